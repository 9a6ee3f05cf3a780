"""ONNX export: a checkpoint folder -> one `.onnx` graph (raw 16 kHz waveform in, logits and probabilities out),
checked against PyTorch, optionally with an int8 twin.

    result = export_onnx("runs/demo/model", "runs/demo/model.onnx", quantize="int8",
                         validation_data=validation_data_config("runs/demo/model", "data/synth"))

What is exported is `kwslib.models.WaveformClassifier` (the model plus wav2vec2's per-clip normalisation), so
`kwslib.inference.OnnxClassifier` feeds the graph the same raw clips `TorchClassifier` feeds PyTorch. The legacy
TorchScript exporter is used (`dynamo=False`): optimum's exporter needs an older transformers, and the dynamo
exporter is not what was measured here. Batch and time axes are dynamic; because a tracer can bake a traced shape
into the graph, the parity check runs every export at three lengths (1 s, 0.5 s, 3 s) and at batch 1 and N.

int8 (`quantize="int8"`) is onnxruntime's dynamic quantization of MatMul/Gemm only (int8 weights, uint8 activations
quantized on the fly): quantizing every op type makes convolutions ConvInteger, which ran slower than fp32 here. So
convolutions stay fp32: wav2vec2's feature encoder (about 40 % of its FLOPs) and all of the compact CNN except its
final Linear. `int8_convs=True` exports 1-D convolutions as unfold + MatMul (`Conv1dAsMatMul`, exact in fp32, never
the convolution over the raw waveform) so they are quantized too; on this AVX2 CPU without VNNI that was slower than
fp32 convolutions and, with int8 weights, less accurate (int16 saturation in the AVX2 kernel), hence off by default.
`int8_reduce_range=True` (7-bit weights) is onnxruntime's remedy for that saturation.

Every export is checked (`check=True`): fp32 logits must match PyTorch within `tolerance`; the int8 graph must agree
with fp32 on the top-1 label for at least `int8_min_agreement` of the validation clips and lose at most
`int8_max_accuracy_drop` accuracy points (only checkable when validation data is given). The numbers go to
`<out>.parity.json`. Files are written to a temporary name and renamed into place once they pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kwslib.audio import fix_length
from kwslib.config import SAMPLE_RATE, DataConfig, ExportConfig
from kwslib.inference import ONNX_INPUT, ONNX_OUTPUTS, OnnxClassifier

MIN_OPSET = 17  # LayerNormalization (wav2vec2, transformers) is one ONNX op from opset 17
PARITY_TOLERANCE = 1e-4
PARITY_SECONDS = (1.0, 0.5, 3.0)  # the traced length and two others, shorter and longer
PARITY_CLIPS = 8  # clips per length in the fp32 and int8 parity batches
INT8_MIN_AGREEMENT = 99.0  # percent of validation clips with the same top-1 label as fp32
INT8_MAX_ACCURACY_DROP = 0.5  # percentage points of validation accuracy
INT8_OP_TYPES = ["MatMul", "Gemm"]
VALIDATION_CHUNK = 256  # validation clips decoded and scored at a time
TRACE_BATCH = 2  # traced batch size: not 1, so that no size-1 dimension can be specialised into the graph
SUFFIX = ".onnx"


class ExportError(RuntimeError):
    """An export that failed its checks (or could not be written). The message is one line with the numbers."""


@dataclass
class ExportResult:
    """What `export_onnx` wrote and what its checks measured (`parity` is the content of the parity JSON)."""

    onnx_path: Path
    int8_path: Path | None = None
    parity_path: Path | None = None
    parity: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "onnx": str(self.onnx_path),
            "int8": str(self.int8_path) if self.int8_path else None,
            "parity_json": str(self.parity_path) if self.parity_path else None,
            "seconds": round(self.seconds, 2),
            "parity": self.parity,
        }

    def lines(self, parity: bool = True) -> list[str]:
        """The parity lines (unless `parity=False`) and the paths written, as `kws export` prints them."""
        out = parity_lines(self.parity) if parity else []
        for path in (self.onnx_path, self.int8_path, self.parity_path):
            if path is not None:
                size = f" ({path.stat().st_size / 1e6:.1f} MB)" if path.suffix == SUFFIX else ""
                out.append(f"wrote {path}{size}")
        return out


def default_out(model_dir: str | os.PathLike) -> Path:
    """`runs/demo/model` -> `runs/demo/model.onnx` (beside the checkpoint folder)."""
    folder = Path(model_dir).expanduser()
    return folder.parent / (folder.name + SUFFIX)


def int8_path_of(out: str | os.PathLike) -> Path:
    """`model.onnx` -> `model.int8.onnx`."""
    out = Path(out)
    return out.with_name(out.stem + ".int8" + SUFFIX)


def parity_path_of(out: str | os.PathLike) -> Path:
    """`model.onnx` -> `model.onnx.parity.json`."""
    out = Path(out)
    return out.with_name(out.name + ".parity.json")


def validation_data_config(model_dir: str | os.PathLike, source: str) -> DataConfig:
    """The DataConfig that trained `model_dir` (its kws.json), pointed at `source`: same protocol, words, clip length
    and split rule, so the validation split has the labels the model was trained on."""
    from kwslib.models import META_FILE

    meta_file = Path(model_dir).expanduser() / META_FILE
    data = {}
    if meta_file.is_file():
        with contextlib.suppress(json.JSONDecodeError):
            data = json.loads(meta_file.read_text()).get("data") or {}
    names = {f.name for f in dataclasses.fields(DataConfig)}
    return DataConfig(**{**{k: v for k, v in data.items() if k in names}, "source": str(source)})


def export(cfg: ExportConfig, *, verbose: bool = True) -> ExportResult:
    """`export_onnx` driven by an ExportConfig (what `kws export` and the notebooks call)."""
    if Path(cfg.model).expanduser().is_file():
        raise ValueError(
            f"--model {cfg.model} is a file; pass the checkpoint folder it came from (the model/ folder of a run)"
        )
    validation = validation_data_config(cfg.model, cfg.data) if cfg.data else None
    return export_onnx(
        cfg.model,
        cfg.out or default_out(cfg.model),
        quantize=cfg.quantize,
        opset=cfg.opset,
        check=cfg.check,
        validation_data=validation,
        tolerance=cfg.tolerance,
        int8_min_agreement=cfg.int8_min_agreement,
        int8_max_accuracy_drop=cfg.int8_max_accuracy_drop,
        int8_convs=cfg.int8_convs,
        int8_reduce_range=cfg.int8_reduce_range,
        max_validation_clips=cfg.max_validation_clips,
        verbose=verbose,
    )


def export_onnx(
    model_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    quantize: str | None = None,
    opset: int = MIN_OPSET,
    check: bool = True,
    validation_data: DataConfig | None = None,
    tolerance: float = PARITY_TOLERANCE,
    int8_min_agreement: float = INT8_MIN_AGREEMENT,
    int8_max_accuracy_drop: float = INT8_MAX_ACCURACY_DROP,
    int8_convs: bool = False,
    int8_reduce_range: bool = False,
    max_validation_clips: int | None = None,
    verbose: bool = True,
) -> ExportResult:
    """Export the checkpoint folder `model_dir` to `out` (and `<stem>.int8.onnx` with `quantize="int8"`), check it
    against PyTorch and write `<out>.parity.json`. ExportError (one line, with the numbers) when a check fails;
    ValueError for bad arguments. `validation_data` (e.g. `validation_data_config(model_dir, "data/synth")`) makes
    the checks use real clips and enables the int8 accuracy check; without it they use deterministic test signals."""
    # Validates quantize, opset, out and the limits with the same messages as the CLI.
    ExportConfig(
        model=str(model_dir),
        out=str(out),
        quantize=quantize,
        opset=opset,
        tolerance=tolerance,
        int8_min_agreement=int8_min_agreement,
        int8_max_accuracy_drop=int8_max_accuracy_drop,
        max_validation_clips=max_validation_clips,
    )
    quantize = None if quantize in (None, "none") else quantize
    from torch.onnx import _constants

    if opset > _constants.ONNX_MAX_OPSET:
        raise ValueError(f"--opset {opset}: this torch exports up to opset {_constants.ONNX_MAX_OPSET}; use 17")
    _lazy_onnx()
    from kwslib.models import WaveformClassifier, load_model

    started = time.perf_counter()
    say = print if verbose else (lambda *a, **k: None)
    out = Path(out).expanduser()
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: folder {out.parent} does not exist; create it or pick another --out")
    with _quiet_transformers():
        model, feature_extractor, meta = load_model(model_dir)  # ModelSourceError (a ValueError) names the fix
    module = WaveformClassifier.wrap(model, feature_extractor).eval()
    labels = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    clip_seconds = float(meta.get("clip_seconds", 1.0))
    clip_samples = int(round(clip_seconds * SAMPLE_RATE))
    metadata = {
        "labels": labels,
        "protocol": meta.get("protocol"),
        "sample_rate": SAMPLE_RATE,
        "clip_seconds": clip_seconds,
        "kws_version": _kws_version(),
        "model_type": model.config.model_type,
        "source": str(model_dir),
        "quantization": "none",
        "opset": opset,
    }
    validation = _Validation(validation_data, labels, clip_samples, max_validation_clips) if validation_data else None

    tmp = _tmp_name(out)
    int8_out = int8_path_of(out) if quantize else None
    int8_tmp = _tmp_name(int8_out) if int8_out else None
    matmul_tmp = _tmp_name(out, ".matmul") if quantize and int8_convs else None
    parity_file = parity_path_of(out) if check else None
    parity: dict = {}
    try:
        write_graph(module, tmp, metadata, opset=opset, clip_samples=clip_samples)
        if check:
            parity = {
                "model": str(model_dir),
                "onnx": str(out),
                "opset": opset,
                "model_type": model.config.model_type,
                "clips": validation.description if validation else "deterministic test signals (no validation data)",
                "lengths_seconds": list(PARITY_SECONDS),
            }
            batches = (validation or ProbeSignals()).parity_batches(clip_samples)
            reference = {seconds: _torch_logits(module, batch) for seconds, batch in batches.items()}
            fp32 = OnnxClassifier.from_file(tmp)
            parity["fp32"] = _fp32_parity(fp32, batches, reference, tolerance)
            say(parity_lines({"fp32": parity["fp32"]})[0])
            if not parity["fp32"]["passed"]:
                exact = parity["fp32"]["float64"] = _float64_comparison(module, fp32, batches, reference)
                _write_parity(parity_file, parity)
                raise ExportError(
                    f"ONNX fp32 logits differ from PyTorch by up to {parity['fp32']['max_abs_logit_diff']:.3g} "
                    f"(tolerance {tolerance:g}; per length {_per_length(parity['fp32'])}; against float64 PyTorch: "
                    f"fp32 PyTorch {exact['pytorch_fp32']:.3g}, ONNX {exact['onnx_fp32']:.3g}); {out} not written, "
                    f"numbers in {parity_file}"
                )
        os.replace(tmp, out)
        if quantize:
            source = out
            if int8_convs:
                rewritten, replaced = convs_as_matmul(module)
                if replaced:
                    source = matmul_tmp
                    write_graph(rewritten, source, metadata, opset=opset, clip_samples=clip_samples)
                    if check:
                        # The rewrite is exact in fp32; checked like the fp32 graph, so an int8 failure is int8's.
                        rewrite = _fp32_parity(OnnxClassifier.from_file(source), batches, reference, tolerance)
                        parity["int8_convs_as_matmul_fp32"] = rewrite
                        if not rewrite["passed"]:
                            _write_parity(parity_file, parity)
                            raise ExportError(
                                f"the convolutions-as-MatMul graph differs from PyTorch by up to "
                                f"{rewrite['max_abs_logit_diff']:.3g} (tolerance {tolerance:g}); {out} written, "
                                f"{int8_out} not: export with --no-int8-convs"
                            )
                del rewritten
            fixed = {f"model.{name}" for name, _ in module.model.named_buffers()}
            _quantize_int8(source, int8_tmp, {**metadata, "quantization": "int8"}, int8_reduce_range, fixed)
            if check:
                int8 = OnnxClassifier.from_file(int8_tmp)
                parity["int8"] = _int8_parity(
                    int8,
                    batches,
                    reference,
                    validation,
                    fp32,
                    int8_min_agreement=int8_min_agreement,
                    int8_max_accuracy_drop=int8_max_accuracy_drop,
                    say=say,
                )
                parity["int8"]["path"] = str(int8_out)
                parity["int8"]["int8_convs"] = int8_convs
                parity["int8"]["int8_reduce_range"] = int8_reduce_range
                parity["int8"]["graph"] = int8_graph_summary(int8_tmp)
                for line in parity_lines({"int8": parity["int8"]}):
                    say(line)
                if not parity["int8"]["passed"]:
                    _write_parity(parity_file, parity)
                    raise ExportError(f"{_int8_failure(parity['int8'])}; {out} written, {int8_out} not")
            os.replace(int8_tmp, int8_out)
        if check:
            parity["seconds"] = round(time.perf_counter() - started, 2)
            _write_parity(parity_file, parity)
    finally:
        for path in (tmp, int8_tmp, matmul_tmp):
            if path is not None:
                path.unlink(missing_ok=True)
    return ExportResult(out, int8_out, parity_file, parity, time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------
# The graphs


class Conv1dAsMatMul(torch.nn.Module):
    """`nn.Conv1d` (groups 1, dilation 1, zero padding) computed as unfold + MatMul: exact in fp32, and its weight
    becomes a MatMul weight that dynamic quantization turns into int8 (a Conv would need ConvInteger, slower than
    fp32 here). The unfold is `kernel` strided slices, so the time axis stays dynamic."""

    def __init__(self, conv: torch.nn.Conv1d):
        super().__init__()
        out_ch, in_ch, kernel = conv.weight.shape
        self.kernel, self.stride, self.padding = kernel, conv.stride[0], conv.padding[0]
        # Patches are flattened channel-major ([C, k] -> C * k), as the weight [O, C, k] is.
        self.weight = torch.nn.Parameter(conv.weight.detach().reshape(out_ch, in_ch * kernel).t().contiguous())
        self.bias = None if conv.bias is None else torch.nn.Parameter(conv.bias.detach().clone())

    @staticmethod
    def applies_to(conv: torch.nn.Module) -> bool:
        return (
            isinstance(conv, torch.nn.Conv1d)
            and conv.groups == 1
            and conv.dilation == (1,)
            and conv.padding_mode == "zeros"
            and isinstance(conv.padding, tuple)
            and conv.in_channels > 1  # never the raw waveform: 8-bit audio would lose the quiet half of a clip
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel, self.stride
        if self.padding:
            x = torch.nn.functional.pad(x, (self.padding, self.padding))
        batch, channels = x.shape[0], x.shape[1]
        frames = (x.shape[2] - k) // s + 1
        if k == s:
            patches = x[:, :, : frames * s].reshape(batch, channels, frames, k)
        else:
            end = (frames - 1) * s + 1
            patches = torch.stack([x[:, :, j : j + end : s] for j in range(k)], dim=-1)
        patches = patches.permute(0, 2, 1, 3).reshape(batch, frames, channels * k)
        y = torch.matmul(patches, self.weight)
        if self.bias is not None:
            y = y + self.bias
        return y.transpose(1, 2)


def convs_as_matmul(module):
    """A copy of `module` with every `Conv1dAsMatMul.applies_to` convolution replaced (the original is untouched).
    Returns (copy, number replaced)."""
    import copy

    clone = copy.deepcopy(module).eval()
    replaced = 0
    for parent in list(clone.modules()):
        for name, child in list(parent.named_children()):
            if Conv1dAsMatMul.applies_to(child):
                setattr(parent, name, Conv1dAsMatMul(child))
                replaced += 1
    return clone, replaced


def write_graph(
    module, path: str | os.PathLike, metadata: dict, *, opset: int = MIN_OPSET, clip_samples: int = SAMPLE_RATE
) -> None:
    """`module` (`waveform [B, T] -> (logits, probabilities)`, e.g. a `WaveformClassifier`) traced to an ONNX graph at
    `path` with dynamic batch and length, `metadata` (labels, sample_rate, clip_seconds, ...; `kws_version` added
    when missing) in its metadata_props, checked by onnx.checker. No parity check: `export_onnx` does that."""
    _export_graph(module, Path(path), opset, clip_samples)
    _finish_graph(Path(path), {"kws_version": _kws_version(), **metadata})


def _export_graph(module, path: Path, opset: int, clip_samples: int) -> None:
    dummy = torch.from_numpy(ProbeSignals().clips(TRACE_BATCH, clip_samples))
    axes = {ONNX_INPUT: {0: "batch", 1: "samples"}, **{name: {0: "batch"} for name in ONNX_OUTPUTS}}
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer warns about every Python branch on a shape; the parity check at three lengths is what proves
        # that none of them baked the traced length into the graph.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                (dummy,),
                str(path),
                input_names=[ONNX_INPUT],
                output_names=list(ONNX_OUTPUTS),
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
        except Exception as err:  # the exporter raises many types for unsupported ops
            raise ExportError(f"torch.onnx.export failed at opset {opset}: {_one_line(err)}") from err
    module.eval()  # the exporter restores the mode it found; keep eval whatever that was


def _finish_graph(path: Path, metadata: dict) -> None:
    """Replace the graph's metadata_props with `metadata` (values JSON-encoded), check the graph and save it."""
    import onnx

    proto = onnx.load(str(path))
    split_reduce_means(proto)
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=json.dumps(value))
    proto.producer_name = "kwslib"
    proto.producer_version = metadata["kws_version"]
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the exported graph is not valid ONNX: {_one_line(err)}") from err
    onnx.save(proto, str(path))


def split_reduce_means(proto) -> int:
    """Rewrite every ReduceMean over several axes (keepdims=1) as a chain of single-axis ReduceMeans, in place;
    returns how many were rewritten.

    Why: onnxruntime's multi-axis ReduceMean is less precise than PyTorch's. The compact model centres its log-mel on
    the mean over (mel, time) of about 4-12k cells; onnxruntime's mean was off by ~7e-5 (6e-6 relative, where
    PyTorch is within 3e-7), which shifted every feature and moved the logits by up to 4e-4 on pure tones. Reducing
    one axis at a time (a few hundred elements each) brings the graph back within ~2e-5 of PyTorch.
    """
    from onnx import helper, numpy_helper

    graph = proto.graph
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 17)
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    nodes, rewritten = [], 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = None
        if node.op_type == "ReduceMean" and node.domain in ("", "ai.onnx") and attrs.get("keepdims", 1) == 1:
            if "axes" in attrs:
                axes = list(attrs["axes"])
            elif len(node.input) > 1 and node.input[1] in constants:
                axes = [int(a) for a in np.atleast_1d(constants[node.input[1]])]
        if not axes or len(axes) < 2 or attrs.get("noop_with_empty_axes", 0):
            nodes.append(node)
            continue
        current = node.input[0]
        # Innermost axes first: contiguous reductions; keepdims=1 keeps every axis index valid along the chain.
        for i, axis in enumerate(sorted(axes, reverse=True)):
            out = node.output[0] if i == len(axes) - 1 else f"{node.output[0]}__kws_mean{i}"
            if opset >= 18:
                axes_name = f"{node.output[0]}__kws_axes{i}"
                graph.initializer.append(numpy_helper.from_array(np.array([axis], dtype=np.int64), axes_name))
                nodes.append(helper.make_node("ReduceMean", [current, axes_name], [out], keepdims=1))
            else:
                nodes.append(helper.make_node("ReduceMean", [current], [out], axes=[axis], keepdims=1))
            current = out
        rewritten += 1
    if rewritten:
        del graph.node[:]
        graph.node.extend(nodes)
    return rewritten


def _quantize_int8(
    source: Path, int8_tmp: Path, metadata: dict, reduce_range: bool, fixed_weights: set[str] = frozenset()
) -> None:
    """Dynamic int8 quantization of the MatMul/Gemm weights of `source`, written to `int8_tmp` with `metadata`.

    MatMuls with a `fixed_weights` initializer (the model's buffers: DFT kernels, mel filterbanks) stay fp32. Their
    inputs are power spectra spanning 100 dB and more, which 8-bit dynamic activations cannot hold: quantizing the
    embedding model's mel filterbank took its validation accuracy from 0.96 to 0.56.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    exclude = [n.name for n in graph.node if n.op_type in INT8_OP_TYPES and any(i in fixed_weights for i in n.input)]

    # onnxruntime logs a "consider pre-processing" hint on the root logger at WARNING for every call.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            str(source),
            str(int8_tmp),
            op_types_to_quantize=INT8_OP_TYPES,
            nodes_to_exclude=exclude,
            weight_type=QuantType.QInt8,
            reduce_range=reduce_range,
        )
    except Exception as err:
        raise ExportError(f"int8 quantization failed: {_one_line(err)}") from err
    finally:
        root.setLevel(level)
    _finish_graph(int8_tmp, metadata)


def int8_graph_summary(path: str | os.PathLike) -> dict:
    """What an int8 graph contains: node counts by op type that matter for speed, and the int8 share of weights."""
    import onnx

    proto = onnx.load(str(path))
    ops = Counter(node.op_type for node in proto.graph.node)
    weight_bytes = Counter()
    tensors = list(proto.graph.initializer) + [
        a.t for node in proto.graph.node if node.op_type == "Constant" for a in node.attribute if a.name == "value"
    ]
    for tensor in tensors:
        n = int(np.prod(tensor.dims)) if tensor.dims else 1
        if tensor.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8):
            weight_bytes["int8"] += n
        elif tensor.data_type == onnx.TensorProto.FLOAT:
            weight_bytes["float32"] += 4 * n
    total = sum(weight_bytes.values()) or 1
    interesting = ("MatMulInteger", "DynamicQuantizeLinear", "MatMul", "Gemm", "Conv", "ConvInteger")
    return {
        "ops": {op: ops[op] for op in interesting if ops[op]},
        "weight_bytes": dict(weight_bytes),
        "int8_weight_share": round(weight_bytes["int8"] / total, 4),
        "file_mb": round(Path(path).stat().st_size / 1e6, 2),
    }


# ---------------------------------------------------------------------------------------------
# The checks


class ProbeSignals:
    """Deterministic clips for checking a graph when no validation data is given: tones, a chirp, noises, near
    silence, a tone burst. Fixed seed, so every export is checked on the same numbers."""

    @staticmethod
    def clips(n: int, samples: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        t = np.arange(samples) / SAMPLE_RATE
        out = np.zeros((n, samples), dtype=np.float32)
        for i in range(n):
            kind = i % 6
            amp = 0.05 + 0.4 * rng.random()
            if kind == 0:
                x = np.sin(2 * np.pi * rng.uniform(150, 1200) * t)
            elif kind == 1:
                f0, f1 = rng.uniform(100, 500), rng.uniform(1000, 4000)
                x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * max(t[-1], 1e-3))))
            elif kind == 2:
                x = rng.standard_normal(samples)
            elif kind == 3:
                x, amp = rng.standard_normal(samples), 1e-3
            elif kind == 4:
                x = np.sin(2 * np.pi * rng.uniform(200, 800) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
            else:
                x = np.zeros(samples)
                start = int(rng.integers(0, max(1, samples // 2)))
                x[start : start + samples // 3] = np.sin(2 * np.pi * 440 * t[: len(x[start : start + samples // 3])])
                x += 0.01 * rng.standard_normal(samples)
            out[i] = (amp * x / max(np.abs(x).max(), 1e-9)).astype(np.float32)
        return out

    def parity_batches(self, clip_samples: int) -> dict[float, np.ndarray]:
        return {s: self.clips(PARITY_CLIPS, int(round(s * clip_samples)), seed=int(s * 10)) for s in PARITY_SECONDS}


class _Validation:
    """The validation split of a dataset, decoded as training decodes it, for the parity batches and int8 accuracy."""

    def __init__(self, cfg: DataConfig, labels: list[str], clip_samples: int, max_clips: int | None):
        from kwslib.data import labels_of, load_data
        from kwslib.train import ClipDataset

        dataset = load_data(cfg)
        if "validation" not in dataset or len(dataset["validation"]) == 0:
            raise ValueError(f"--data {cfg.source} has no validation clips to check the export on; omit --data")
        data_labels = list(labels_of(dataset).labels)
        if data_labels != labels:
            raise ValueError(
                f"--data {cfg.source} has labels {data_labels} but the model predicts {labels}; pass the dataset "
                "(and protocol) the model was trained on"
            )
        self.split = ClipDataset(dataset["validation"], clip_samples)
        n = len(self.split)
        self.indices = (
            np.unique(np.linspace(0, n - 1, max_clips).round().astype(int)) if max_clips and max_clips < n else None
        )
        self.clip_samples = clip_samples
        count = len(self.indices) if self.indices is not None else n
        self.description = f"{cfg.source} validation split ({count} of {n} clips)"

    def __len__(self) -> int:
        return len(self.indices) if self.indices is not None else len(self.split)

    def _index(self, i: int) -> int:
        return int(self.indices[i]) if self.indices is not None else i

    def parity_batches(self, clip_samples: int) -> dict[float, np.ndarray]:
        # Real clips spread over the split; 0.5 s is each clip's centre, 3 s three consecutive clips end to end.
        picks = np.unique(np.linspace(0, len(self) - 1, PARITY_CLIPS + 2).round().astype(int))
        clips = [self.split[self._index(int(i))][0] for i in picks]
        batches = {}
        for seconds in PARITY_SECONDS:
            length = int(round(seconds * clip_samples))
            if seconds <= 1.0:
                rows = [fix_length(c, length) for c in clips[:PARITY_CLIPS]]
            else:
                reps = int(np.ceil(seconds))
                rows = [
                    fix_length(np.concatenate([clips[(i + j) % len(clips)] for j in range(reps)]), length)
                    for i in range(min(PARITY_CLIPS, len(clips)))
                ]
            batches[seconds] = np.stack(rows).astype(np.float32)
        return batches

    def chunks(self):
        """(clips [n, clip_samples], labels [n]) chunks over the whole (or sampled) split."""
        for start in range(0, len(self), VALIDATION_CHUNK):
            items = [self.split[self._index(i)] for i in range(start, min(len(self), start + VALIDATION_CHUNK))]
            yield np.stack([x for x, _ in items]).astype(np.float32), np.array([y for _, y in items])


def _torch_logits(module, batch: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        logits, _ = module(torch.from_numpy(batch))
    return logits.float().numpy()


def _fp32_parity(clf, batches, reference, tolerance: float) -> dict:
    by_length = []
    for seconds, batch in batches.items():
        got = clf.logits(batch)
        by_length.append(
            {
                "seconds": seconds,
                "clips": len(batch),
                "max_abs_logit_diff": float(np.abs(got - reference[seconds]).max()),
                "top1_agreement": float((got.argmax(1) == reference[seconds].argmax(1)).mean()),
            }
        )
    # Batch 1 separately: a tracer can also bake a batch size in.
    first = next(iter(batches))
    one = float(np.abs(clf.logits(batches[first][:1]) - reference[first][:1]).max())
    worst = max([r["max_abs_logit_diff"] for r in by_length] + [one])
    return {
        "tolerance": tolerance,
        "max_abs_logit_diff": worst,
        "batch1_max_abs_logit_diff": one,
        "logit_scale": float(max(np.abs(r).max() for r in reference.values())),
        "top1_agreement": float(np.mean([r["top1_agreement"] for r in by_length])),
        "by_length": by_length,
        "passed": bool(worst <= tolerance),
    }


def _float64_comparison(module, clf, batches, reference) -> dict:
    """How far PyTorch fp32 and the ONNX graph each are from the model run in float64, on the parity batches.

    Only computed when the fp32 check fails: when PyTorch fp32 is as far from float64 as the graph is, the difference
    is float32 rounding in an ill-conditioned model (e.g. a log-mel of a pure tone), not a wrong export.
    """
    import copy

    exact = copy.deepcopy(module).double().eval()
    torch_err, onnx_err = 0.0, 0.0
    with torch.inference_mode():
        for seconds, batch in batches.items():
            truth = exact(torch.from_numpy(batch).double())[0].numpy()
            torch_err = max(torch_err, float(np.abs(reference[seconds] - truth).max()))
            onnx_err = max(onnx_err, float(np.abs(clf.logits(batch) - truth).max()))
    return {"pytorch_fp32": torch_err, "onnx_fp32": onnx_err}


def _int8_parity(int8, batches, reference, validation, fp32, *, int8_min_agreement, int8_max_accuracy_drop, say):
    agree, diffs, total = 0, [], 0
    for seconds, batch in batches.items():
        got = int8.logits(batch)
        agree += int((got.argmax(1) == reference[seconds].argmax(1)).sum())
        total += len(batch)
        diffs.append(float(np.abs(got - reference[seconds]).max()))
    result = {
        "parity_clips_top1_agreement": agree / total,
        "parity_clips_max_abs_logit_diff": max(diffs),
        "min_agreement_percent": int8_min_agreement,
        "max_accuracy_drop_pp": int8_max_accuracy_drop,
    }
    if validation is None:
        result.update(
            {"validation": None, "checked": False, "passed": True, "note": "no validation data: pass --data to check"}
        )
        return result
    say(f"int8: scoring {validation.description} with fp32 and int8 ...")
    y_true, y_fp32, y_int8 = [], [], []
    for clips, labels in validation.chunks():
        y_true.append(labels)
        y_fp32.append(fp32.logits(clips).argmax(1))
        y_int8.append(int8.logits(clips).argmax(1))
    y_true, y_fp32, y_int8 = map(np.concatenate, (y_true, y_fp32, y_int8))
    acc_fp32, acc_int8 = float((y_fp32 == y_true).mean()), float((y_int8 == y_true).mean())
    agreement = float((y_fp32 == y_int8).mean())
    drop_pp = 100 * (acc_fp32 - acc_int8)
    result.update(
        {
            "validation": {
                "clips": len(y_true),
                "accuracy_fp32": acc_fp32,
                "accuracy_int8": acc_int8,
                "accuracy_drop_pp": drop_pp,
                "top1_agreement": agreement,
            },
            "checked": True,
            "passed": bool(100 * agreement >= int8_min_agreement and drop_pp <= int8_max_accuracy_drop),
        }
    )
    return result


def _int8_failure(r: dict) -> str:
    v = r["validation"]
    return (
        f"int8 check failed on {v['clips']} validation clips: top-1 agreement with fp32 {100 * v['top1_agreement']:.2f}% "
        f"(need >= {r['min_agreement_percent']:g}%), accuracy {v['accuracy_int8']:.4f} vs fp32 {v['accuracy_fp32']:.4f} "
        f"= drop {v['accuracy_drop_pp']:.2f} pp (allowed {r['max_accuracy_drop_pp']:g}); "
        + ("try --no-int8-convs (keep convolutions fp32), " if r.get("int8_convs") else "")
        + ("" if r.get("int8_reduce_range") else "try --int8-reduce-range (7-bit weights), ")
        + "or ship the fp32 model"
    )


def _per_length(fp32: dict) -> str:
    return ", ".join(f"{r['seconds']:g} s {r['max_abs_logit_diff']:.2e}" for r in fp32["by_length"])


def parity_lines(parity: dict) -> list[str]:
    """Human-readable lines for a parity dict (as written to `<out>.parity.json`)."""
    lines = []
    if "fp32" in parity:
        r = parity["fp32"]
        lines.append(
            f"fp32 vs PyTorch: max |dlogit| {r['max_abs_logit_diff']:.2e} (tolerance {r['tolerance']:g}; "
            f"{_per_length(r)}, batch 1 {r['batch1_max_abs_logit_diff']:.2e}; logits up to {r['logit_scale']:.3g}), "
            f"top-1 agreement {100 * r['top1_agreement']:.1f}%: {'ok' if r['passed'] else 'FAILED'}"
        )
    if "int8" in parity:
        r = parity["int8"]
        lines.append(
            f"int8 vs PyTorch on the parity clips: top-1 agreement {100 * r['parity_clips_top1_agreement']:.1f}%, "
            f"max |dlogit| {r['parity_clips_max_abs_logit_diff']:.3g}"
        )
        v = r.get("validation")
        if v:
            lines.append(
                f"int8 on {v['clips']} validation clips: accuracy {v['accuracy_int8']:.4f} vs fp32 "
                f"{v['accuracy_fp32']:.4f} (drop {v['accuracy_drop_pp']:.2f} pp, limit {r['max_accuracy_drop_pp']:g}), "
                f"top-1 agreement {100 * v['top1_agreement']:.2f}% (limit {r['min_agreement_percent']:g}%): "
                f"{'ok' if r['passed'] else 'FAILED'}"
            )
        else:
            lines.append("int8 accuracy not checked: no validation data (pass --data DIR)")
        g = r.get("graph")
        if g:
            ops = ", ".join(f"{k} {v}" for k, v in g["ops"].items())
            lines.append(f"int8 graph: {ops}; {100 * g['int8_weight_share']:.0f}% of weight bytes int8")
    return lines


# ---------------------------------------------------------------------------------------------
# Small helpers


def _write_parity(path: Path | None, parity: dict) -> None:
    if path is None:
        return
    from kwslib.evaluation import write_json_atomic

    write_json_atomic(path, parity)


def _tmp_name(path: Path, extra: str = "") -> Path:
    # Same folder, so os.replace is a rename; ends in .onnx so tools that look at suffixes accept it.
    return path.with_name(f".{path.stem}{extra}.tmp-{os.getpid()}{SUFFIX}")


@contextlib.contextmanager
def _quiet_transformers():
    """No "Loading weights" progress bar from transformers while loading a checkpoint."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _kws_version() -> str:
    from kwslib import __version__

    return __version__


def _lazy_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise ValueError(
            f"kws export needs onnx and onnxruntime ({err.name} is missing); pip install 'kwslib[export]'"
        ) from err


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
