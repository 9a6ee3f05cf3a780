"""`Classifier`: the one way anything scores audio after training, on PyTorch or onnxruntime behind one API.

    clf = Classifier.load("runs/demo/model")          # a checkpoint folder -> PyTorch
    clf = Classifier.load("runs/demo/model.onnx")     # an exported graph  -> onnxruntime
    clf.predict("clip.wav", top_k=3)                  # any format, rate and channel count (kwslib.audio)
    clf.predict_batch(["a.wav", "b.wav"])             # real batches
    clf.probabilities(batch)                          # [B, T] float32 16 kHz clips -> [B, C] (evaluation's path)

Both back ends see the same thing: raw 16 kHz mono waveforms in, logits out. The model's input normalisation
(wav2vec2's per-clip zero mean / unit variance) happens in `kwslib.models.WaveformClassifier`, which is also what
`kwslib.export` puts into the ONNX graph, so the two back ends agree to float precision. This module imports
neither torch nor onnxruntime until a model of that kind is loaded.

Audio longer than one clip is scored in sliding windows (`WINDOW_HOP_SECONDS` apart, the last one flush with
the end) and the result carries every window and the best detection, instead of scoring only the first second.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kwslib.audio import AudioError, describe, fix_length, load_audio
from kwslib.config import SAMPLE_RATE
from kwslib.labels import SILENCE, UNKNOWN

WINDOW_HOP_SECONDS = 0.25  # hop of the sliding windows over long audio: a 1 s word is seen whole at least 3 times
DEFAULT_BATCH_SIZE = 16
SCORE_TIE = 1e-4  # window scores this close count as equally confident when picking the best window
ONNX_INPUT = "input_values"
ONNX_OUTPUTS = ("logits", "probabilities")
NON_KEYWORDS = (SILENCE, UNKNOWN)


class ModelLoadError(ValueError):
    """A model file or folder that cannot be loaded. The message is one line and says what to pass instead."""


@dataclass
class WindowPrediction:
    """The top label of one window of a long input."""

    start: float  # seconds
    end: float
    label: str
    score: float
    top_k: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "label": self.label, "score": self.score}


@dataclass
class Prediction:
    """What `Classifier.predict` returns: the top label, the top-k, and for long inputs every window."""

    label: str
    score: float
    top_k: list[dict]  # [{"label": str, "score": float}], best first
    seconds: float  # duration of the input
    windows: list[WindowPrediction] | None = None  # None when the input fits in one clip
    best_window: WindowPrediction | None = None  # the window the label and score come from (long inputs)

    def to_dict(self) -> dict:
        out = {"label": self.label, "score": self.score, "top_k": self.top_k, "seconds": round(self.seconds, 3)}
        if self.windows is not None:
            out["best_window"] = self.best_window.to_dict() if self.best_window else None
            out["windows"] = [w.to_dict() for w in self.windows]
        return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of `[B, C]` logits, computed stably in float64 and returned as float32."""
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def top_k_of(probs: np.ndarray, labels: list[str], k: int) -> list[dict]:
    """The `k` most probable labels of one probability row, best first."""
    order = np.argsort(-probs, kind="stable")[: max(1, min(k, len(labels)))]
    return [{"label": labels[i], "score": float(probs[i])} for i in order]


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Start offsets of windows of `window` samples every `hop`, the last one ending exactly at `n_samples`."""
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] != n_samples - window:
        starts.append(n_samples - window)
    return starts


class Classifier:
    """A keyword classifier on PyTorch (a checkpoint folder) or onnxruntime (a .onnx file); see the module doc."""

    backend: str = ""

    def __init__(self, labels: list[str], *, meta: dict | None = None, name: str = "", sample_rate: int = SAMPLE_RATE):
        self.labels = list(labels)
        self.meta = meta or {}
        self.name = name
        self.sample_rate = int(sample_rate)
        self.clip_seconds = float(self.meta.get("clip_seconds", 1.0))
        self.clip_samples = int(round(self.clip_seconds * self.sample_rate))
        self.protocol = self.meta.get("protocol")

    # -- loading -----------------------------------------------------------------------------------------------

    @staticmethod
    def load(path: str | os.PathLike, *, threads: int | None = None) -> Classifier:
        """A checkpoint folder (PyTorch) or a `.onnx` file (onnxruntime); ModelLoadError naming the fix otherwise."""
        p = Path(path).expanduser()
        if p.is_dir():
            return TorchClassifier.from_dir(p, threads=threads)
        if p.is_file() and p.suffix.lower() == ".onnx":
            return OnnxClassifier.from_file(p, threads=threads)
        if p.is_file():
            raise ModelLoadError(
                f"--model {path} is a file but not .onnx; pass a checkpoint folder (e.g. runs/demo/model) "
                "or an exported model.onnx"
            )
        raise ModelLoadError(
            f"--model {path}: no such file or folder; pass a checkpoint folder (e.g. runs/demo/model) or a .onnx file "
            "written by `kws export`"
        )

    # -- scoring -----------------------------------------------------------------------------------------------

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """`[B, T]` float32 16 kHz clips -> `[B, C]` float32 logits. T is normally `clip_samples`."""
        raise NotImplementedError

    def probabilities(self, batch: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """`[B, T]` clips -> `[B, C]` class probabilities, scored `batch_size` clips at a time."""
        batch = self._check_batch(batch)
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        parts = [softmax(self.logits(batch[i : i + batch_size])) for i in range(0, len(batch), batch_size)]
        return np.concatenate(parts)

    def predict(
        self,
        audio,
        top_k: int = 5,
        *,
        sample_rate: int | None = None,
        hop_seconds: float = WINDOW_HOP_SECONDS,
    ) -> Prediction:
        """Classify one input: a path, bytes, a file object or an array (give `sample_rate` for an array not at
        16 kHz). Inputs longer than one clip are scored in sliding windows. AudioError for unreadable audio."""
        return self.predict_batch([audio], top_k, sample_rate=sample_rate, hop_seconds=hop_seconds)[0]

    def predict_batch(
        self,
        audios: list,
        top_k: int = 5,
        *,
        sample_rate: int | None = None,
        hop_seconds: float = WINDOW_HOP_SECONDS,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> list[Prediction]:
        """`predict` for many inputs, their clips and windows scored together in batches of `batch_size`.

        Raises AudioError for the first input that cannot be decoded; decode first (`kwslib.load_audio`) and skip
        bad ones when a run must go on past them, as `kws predict` does.
        """
        if not hop_seconds > 0:
            raise ValueError(f"hop_seconds {hop_seconds} must be greater than 0")
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k {top_k!r} must be a whole number of at least 1")
        hop = max(1, int(round(hop_seconds * self.sample_rate)))
        windows, owners, lengths = [], [], []
        for n, audio in enumerate(audios):
            samples = self.decode(audio, sample_rate=sample_rate)
            lengths.append(len(samples))
            if len(samples) <= self.clip_samples:
                windows.append(fix_length(samples, self.clip_samples))
                owners.append((n, None))
                continue
            for start in window_starts(len(samples), self.clip_samples, hop):
                windows.append(samples[start : start + self.clip_samples])
                owners.append((n, start))
        probs = self.probabilities(np.stack(windows), batch_size) if windows else np.zeros((0, len(self.labels)))
        results: list[list[tuple[int | None, np.ndarray]]] = [[] for _ in audios]
        for (n, start), row in zip(owners, probs):
            results[n].append((start, row))
        return [self._prediction(rows, length, top_k) for rows, length in zip(results, lengths)]

    def decode(self, audio, *, sample_rate: int | None = None) -> np.ndarray:
        """Any supported input -> mono float32 at the model's rate (AudioError for bad input)."""
        if isinstance(audio, np.ndarray) and audio.dtype.kind == "f" and sample_rate is None:
            sample_rate = self.sample_rate
        if isinstance(audio, (list, tuple)):
            raise AudioError(f"{describe(audio)}: pass a numpy array, a path or bytes, not a {type(audio).__name__}")
        return load_audio(audio, self.sample_rate, source_rate=sample_rate)

    def _prediction(self, rows: list[tuple[int | None, np.ndarray]], length: int, top_k: int) -> Prediction:
        seconds = length / self.sample_rate
        if len(rows) == 1 and rows[0][0] is None:
            top = top_k_of(rows[0][1], self.labels, top_k)
            return Prediction(top[0]["label"], top[0]["score"], top, seconds)
        windows = []
        for start, row in rows:
            top = top_k_of(row, self.labels, top_k)
            t0 = start / self.sample_rate
            windows.append(WindowPrediction(t0, t0 + self.clip_seconds, top[0]["label"], top[0]["score"], top))
        # The best detection is the most confident keyword window; a file with no keyword anywhere reports its most
        # confident window (silence or unknown).
        keyword_windows = [w for w in windows if w.label not in NON_KEYWORDS]
        best = _best_window(windows, keyword_windows or windows)
        return Prediction(best.label, best.score, best.top_k, seconds, windows, best)

    def _check_batch(self, batch) -> np.ndarray:
        batch = np.asarray(batch)
        if batch.ndim == 1:
            batch = batch[None]
        if batch.ndim != 2:
            raise ValueError(f"audio batch of shape {batch.shape}: give [B, T] mono clips at {self.sample_rate} Hz")
        if batch.dtype.kind != "f":
            raise TypeError(f"audio batch of dtype {batch.dtype}: give float32 samples in [-1, 1] (kwslib.load_audio)")
        if batch.shape[1] == 0:
            raise ValueError("audio batch has 0 samples per clip")
        return np.ascontiguousarray(batch, dtype=np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self.labels)} labels, backend={self.backend})"


class TorchClassifier(Classifier):
    """A checkpoint folder scored with PyTorch."""

    backend = "torch"

    def __init__(self, module, labels, *, meta=None, name="", threads: int | None = None):
        super().__init__(labels, meta=meta, name=name)
        import torch

        self.module = module.eval()
        self.model = module.model
        if threads:
            torch.set_num_threads(threads)

    @classmethod
    def from_dir(cls, path: Path, *, threads: int | None = None) -> TorchClassifier:
        from kwslib.models import ModelSourceError, WaveformClassifier, load_model

        try:
            model, feature_extractor, meta = load_model(path)
        except ModelSourceError as err:
            raise ModelLoadError(str(err)) from err
        labels = [model.config.id2label[i] for i in range(len(model.config.id2label))]
        return cls(
            WaveformClassifier.wrap(model, feature_extractor), labels, meta=meta, name=str(path), threads=threads
        )

    def logits(self, batch: np.ndarray) -> np.ndarray:
        import torch

        batch = self._check_batch(batch)
        with torch.inference_mode():
            logits, _ = self.module(torch.from_numpy(batch))
        return logits.float().numpy()


class OnnxClassifier(Classifier):
    """An exported `.onnx` graph (raw waveform in, logits and probabilities out) scored with onnxruntime."""

    backend = "onnxruntime"

    def __init__(self, session, labels, *, meta=None, name=""):
        meta = meta or {}
        super().__init__(labels, meta=meta, name=name, sample_rate=int(meta.get("sample_rate", SAMPLE_RATE)))
        self.session = session

    @classmethod
    def from_file(cls, path: Path, *, threads: int | None = None) -> OnnxClassifier:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ModelLoadError(
                f"--model {path} needs onnxruntime; pip install 'kwslib[export]' (or onnxruntime)"
            ) from err
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelLoadError(
                f"--model {path} is not a loadable ONNX model ({' '.join(str(err).split())[:160]}); "
                "re-export it with `kws export`"
            ) from err
        meta = onnx_metadata(session)
        if "labels" not in meta:
            raise ModelLoadError(f"--model {path} has no kws labels in its metadata; export it with `kws export`")
        return cls(session, meta["labels"], meta=meta, name=str(path))

    def logits(self, batch: np.ndarray) -> np.ndarray:
        batch = self._check_batch(batch)
        (logits,) = self.session.run([ONNX_OUTPUTS[0]], {ONNX_INPUT: batch})
        return logits.astype(np.float32, copy=False)


def _best_window(windows: list[WindowPrediction], pool: list[WindowPrediction]) -> WindowPrediction:
    """The most confident window of `pool`; among windows tied with it (same label, score within `SCORE_TIE`), the
    middle of the longest run of consecutive ones.

    A confident model saturates: every window holding the whole word scores 1.0, and a plain max() would return the
    earliest of them, which starts before the word. The middle of the run is the window centred on it.
    """
    top = max(pool, key=lambda w: w.score)
    tied = {id(w) for w in pool if w.label == top.label and w.score >= top.score - SCORE_TIE}
    runs, run = [], []
    for w in windows:  # in time order
        if id(w) in tied:
            run.append(w)
        elif run:
            runs.append(run)
            run = []
    if run:
        runs.append(run)
    longest = max(runs, key=len)
    return longest[(len(longest) - 1) // 2]


def onnx_metadata(session) -> dict:
    """The kws metadata of an onnxruntime session: JSON values decoded (labels, sample_rate, protocol, ...)."""
    meta = {}
    for key, value in session.get_modelmeta().custom_metadata_map.items():
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    return meta
