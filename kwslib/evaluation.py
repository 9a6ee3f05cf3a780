"""Evaluation by keyword, noise and device: metrics (scikit-learn) in the shape `metrics.json` stores them.

    metrics = evaluate(EvalConfig(model="runs/demo/model", out="runs/demo"), DataConfig(source="data/synth"))

`evaluate` scores a split with a `kwslib.inference.Classifier` (checkpoint folder or ONNX file) under every
evaluation condition of `kwslib.conditions` (clean, noise type x SNR, device profiles, input levels), batched,
and writes one versioned `metrics.json` (schema `kwslib/schemas/metrics.schema.json`, documented in the README)
plus the audio of the most confident mistakes; `kwslib.report` renders it. The metric functions below take plain
arrays, so notebooks and the local `evaluate` metric module (`kwslib/metrics/kws_metrics.py`) share them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CALIBRATION_BINS = 15  # equal-width confidence bins of the reliability diagram and ECE (Guo et al. 2017 use 15)
DET_MAX_POINTS = 100  # points kept per DET curve: enough for a smooth plot, small enough for metrics.json
BABBLE_MIN_UNKNOWN = 8  # non-keyword clips needed to mix babble from them alone (4-6 talkers, other speakers)
PROB_FLOOR = 1e-12  # log-loss floor, so a confident wrong answer costs ~27.6 nats rather than infinity

METRICS_SCHEMA = "kws.metrics/2"
SCHEMA_FILE = Path(__file__).parent / "schemas" / "metrics.schema.json"


class MetricsError(ValueError):
    """A metrics.json that cannot be read or does not follow its schema. The message is one line."""


def metric_module_path() -> str:
    """Path of the local `evaluate` metric module: `evaluate.load(metric_module_path())` works offline."""
    return str(Path(__file__).parent / "metrics" / "kws_metrics.py")


def metrics_schema() -> dict:
    """The JSON Schema of metrics.json (`kwslib/schemas/metrics.schema.json`)."""
    return json.loads(SCHEMA_FILE.read_text())


def validate_metrics(data: dict, *, name: str = "metrics") -> dict:
    """`data` if it follows the metrics.json schema, else MetricsError naming the first offending field."""
    import jsonschema

    if not isinstance(data, dict):
        raise MetricsError(f"{name}: expected a JSON object, got {type(data).__name__}")
    if data.get("schema") != METRICS_SCHEMA:
        raise MetricsError(
            f"{name}: schema is {data.get('schema')!r}, this kwslib reads {METRICS_SCHEMA!r}; "
            "re-run `kws evaluate` with this version to regenerate it"
        )
    validator = jsonschema.Draft202012Validator(metrics_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise MetricsError(f"{name}: {where}: {error.message}")
    return data


def load_metrics(path: str | os.PathLike) -> dict:
    """Read and validate a metrics.json file."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.json"
    if not path.is_file():
        raise MetricsError(f"{path}: no such file; pass a metrics.json written by `kws train` or `kws evaluate`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MetricsError(f"{path} is not valid JSON ({err}); re-run `kws evaluate` to rewrite it") from err
    return validate_metrics(data, name=str(path))


def classification_metrics(y_true, y_pred, labels: list[str], *, loss: float | None = None) -> dict:
    """Accuracy, balanced accuracy, weighted and macro precision/recall/F1, per-label precision/recall/F1/support."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    ids = list(range(len(labels)))
    out = {"clips": int(len(y_true)), "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0}
    out["balanced_accuracy"] = balanced_accuracy(y_true, y_pred)
    for average in ("weighted", "macro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=ids, average=average, zero_division=0)
        out[f"precision_{average}"], out[f"recall_{average}"], out[f"f1_{average}"] = float(p), float(r), float(f)
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=ids, average=None, zero_division=0)
    out["per_label"] = {
        label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
        for i, label in enumerate(labels)
    }
    if loss is not None:
        out["loss"] = float(loss)
    return out


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean recall over the classes present in `y_true` (sklearn's definition; 0.0 for no clips)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    present = np.unique(y_true)
    if present.size == 0:
        return 0.0
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in present]))


def log_loss(probs: np.ndarray, y_true) -> float:
    """Mean cross-entropy of the true class, in nats."""
    y_true = np.asarray(y_true)
    if len(y_true) == 0:
        return 0.0
    return float(-np.mean(np.log(np.maximum(probs[np.arange(len(y_true)), y_true], PROB_FLOOR))))


def confusion(y_true, y_pred, n_labels: int) -> list[list[int]]:
    """Counts: rows are the true label, columns the predicted one."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=list(range(n_labels))).astype(int).tolist()


def per_speaker(y_true, y_pred, speakers) -> dict:
    """Accuracy per speaker: `{speaker: {"clips": n, "accuracy": a}}`, speakers sorted."""
    y_true, y_pred, speakers = np.asarray(y_true), np.asarray(y_pred), np.asarray(speakers)
    out = {}
    for spk in sorted(set(speakers.tolist())):
        mask = speakers == spk
        out[str(spk)] = {"clips": int(mask.sum()), "accuracy": float(np.mean(y_pred[mask] == y_true[mask]))}
    return out


def calibration(probs: np.ndarray, y_true, bins: int = CALIBRATION_BINS) -> dict:
    """Expected calibration error of the top-1 confidence over `bins` equal-width bins, and the bins themselves.

    ECE = sum over bins of (share of clips in the bin) x |accuracy - mean confidence|; an empty bin has null
    confidence and accuracy.
    """
    y_true = np.asarray(y_true)
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    correct = pred == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds (edges[i], edges[i+1]]; a confidence of exactly 0 joins the first bin.
    index = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    out_bins, ece, n = [], 0.0, max(len(y_true), 1)
    for i in range(bins):
        mask = index == i
        count = int(mask.sum())
        c = float(conf[mask].mean()) if count else None
        a = float(correct[mask].mean()) if count else None
        if count:
            ece += count / n * abs(a - c)
        out_bins.append(
            {"lower": float(edges[i]), "upper": float(edges[i + 1]), "count": count, "confidence": c, "accuracy": a}
        )
    return {"ece": float(min(ece, 1.0)), "bins": out_bins}


def det_curves(probs: np.ndarray, y_true, labels: list[str], max_points: int = DET_MAX_POINTS) -> dict:
    """Per label, one-vs-rest: false-positive and false-negative rates over thresholds on that label's score,
    the ROC AUC and the equal error rate. Labels without positives or negatives in `y_true` are left out."""
    from sklearn.metrics import det_curve, roc_auc_score

    y_true = np.asarray(y_true)
    out = {}
    for i, label in enumerate(labels):
        positive = y_true == i
        if positive.all() or not positive.any():
            continue
        fpr, fnr, thresholds = det_curve(positive, probs[:, i])
        gap = np.abs(fpr - fnr)
        k = int(np.argmin(gap))
        keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), max_points)).round().astype(int))
        out[label] = {
            "fpr": [float(v) for v in fpr[keep]],
            "fnr": [float(v) for v in fnr[keep]],
            "thresholds": [float(v) for v in thresholds[keep]],
            "auc": float(roc_auc_score(positive, probs[:, i])),
            "eer": float((fpr[k] + fnr[k]) / 2),
        }
    return out


def split_metrics(probs: np.ndarray, y_true, labels: list[str], speakers=None) -> dict:
    """Everything metrics.json holds for one split under one condition: classification metrics, loss, confusion
    matrix, per-speaker accuracy (when `speakers` are given), calibration and DET curves."""
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true)
    if probs.ndim != 2 or probs.shape != (len(y_true), len(labels)):
        raise ValueError(
            f"probabilities of shape {probs.shape} do not match {len(y_true)} clips x {len(labels)} labels"
        )
    y_pred = probs.argmax(axis=1)
    out = classification_metrics(y_true, y_pred, labels, loss=log_loss(probs, y_true))
    out["confusion_matrix"] = confusion(y_true, y_pred, len(labels))
    if speakers is not None:
        out["per_speaker"] = per_speaker(y_true, y_pred, speakers)
    out["calibration"] = calibration(probs, y_true)
    out["det"] = det_curves(probs, y_true, labels)
    return out


def condition_summary(probs: np.ndarray, y_true, labels: list[str]) -> dict:
    """The per-condition numbers of metrics.json's `evaluation.conditions`."""
    m = classification_metrics(y_true, probs.argmax(axis=1), labels, loss=log_loss(probs, y_true))
    keep = ("clips", "accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "loss")
    return {k: m[k] for k in keep}


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    """Write JSON through a temp file renamed into place, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Scoring a model under every condition


@dataclass
class EvalResult:
    metrics: dict
    metrics_path: Path
    report_path: Path | None


def evaluate(cfg, data_cfg, *, progress: bool = True) -> EvalResult:
    """Score `cfg.model` on `data_cfg`'s `cfg.split` under `cfg.conditions`; write metrics.json (+ report.html).

    `cfg` is an `EvalConfig`, `data_cfg` a `DataConfig` whose protocol matches the model's (`data_config_for`
    makes one from the model). The checkpoint's own training metrics (its kws.json) are carried over, so one
    metrics.json tells the run's whole story.
    """
    from tqdm.auto import tqdm

    from kwslib.audio import load_audio, write_wav
    from kwslib.conditions import Corruptor, parse_conditions
    from kwslib.data import load_data, load_noises
    from kwslib.inference import Classifier
    from kwslib.provenance import run_context

    conditions = parse_conditions(cfg.conditions)
    clf = Classifier.load(cfg.model)
    dataset = load_data(data_cfg)
    if cfg.split not in dataset:
        raise ValueError(f"--split {cfg.split}: {data_cfg.source} has only {', '.join(dataset)}")
    split = dataset[cfg.split]
    if len(split) == 0:
        raise ValueError(f"--split {cfg.split} of {data_cfg.source} has no clips; choose another split or dataset")
    data_labels = split.features["label"].names
    missing = [name for name in data_labels if name not in clf.labels]
    if missing:
        raise ValueError(
            f"{data_cfg.source} ({data_cfg.protocol}) has labels {missing} that model {cfg.model} does not know "
            f"(it has {clf.labels}); evaluate with the model's protocol, --protocol {clf.protocol or 'custom'}"
        )
    to_model = np.array([clf.labels.index(name) for name in data_labels])

    indices = np.arange(len(split))
    if cfg.max_clips is not None and cfg.max_clips < len(split):
        indices = np.sort(np.random.default_rng(cfg.seed).choice(len(split), cfg.max_clips, replace=False))
    rows = split.select(indices.tolist())
    y_true = to_model[np.asarray(rows["label"])]
    speakers = [str(s) for s in rows["speaker_id"]]
    clips = [load_audio(a, clip_seconds=clf.clip_seconds) for a in rows["audio"]]
    babble = babble_pool(clips, y_true, speakers, clf.labels)
    corruptor = Corruptor(load_noises(data_cfg), babble, seed=cfg.seed, sample_rate=clf.sample_rate)
    usable = corruptor.available(conditions)
    skipped = [{"name": c.name, "why": corruptor.why_unavailable(c)} for c in conditions if c not in usable]

    results, candidates, clean = [], [], None
    started = time.perf_counter()
    for condition in tqdm(usable, desc="kws evaluate", unit="condition", disable=not progress):
        batch = np.stack(
            [corruptor.apply(x, condition, int(i), speaker_id=s) for x, i, s in zip(clips, indices, speakers)]
        )
        probs = clf.probabilities(batch, cfg.batch_size)
        results.append({**condition.to_dict(), **condition_summary(probs, y_true, clf.labels)})
        if condition.kind == "clean":
            clean = probs
        wrong = np.flatnonzero(probs.argmax(1) != y_true)
        for k in wrong[np.argsort(-probs[wrong].max(1))][: cfg.mistakes]:
            candidates.append((condition, int(k), probs[k], batch[k]))
    seconds = time.perf_counter() - started
    scored = len(clips) * len(usable)

    if clean is None:  # the clean condition was not asked for: full metrics still describe the clean split
        clean = clf.probabilities(np.stack(clips), cfg.batch_size)
    out = Path(cfg.out)
    mistakes = _write_mistakes(candidates, cfg.mistakes, out, clf.labels, y_true, indices, speakers, write_wav)
    metrics = _base_metrics(clf)
    metrics.update(
        {
            "labels": list(clf.labels),
            "context": run_context(
                model=str(cfg.model),
                model_name=(clf.meta.get("train") or {}).get("model"),
                model_type=clf.meta.get("model_type") or _model_type(clf),
                parameters=_parameters(clf),
                backend=clf.backend,
                data=data_cfg.source,
                protocol=data_cfg.protocol,
                split=cfg.split,
            ),
            cfg.split: split_metrics(clean, y_true, clf.labels, speakers),
            "evaluation": {
                "split": cfg.split,
                "conditions": results,
                "skipped_conditions": skipped,
                "mistakes": mistakes,
                "runtime": {
                    "seconds": round(seconds, 3),
                    "clips": scored,
                    "clips_per_second": round(scored / max(seconds, 1e-9), 1),
                    "batch_size": cfg.batch_size,
                    "backend": clf.backend,
                },
            },
        }
    )
    path = out / "metrics.json"
    metrics.update(_kept_sections(path, clf.labels))
    validate_metrics(metrics)
    write_json_atomic(path, metrics)
    report = None
    if cfg.report:
        from kwslib.report import render_report

        report = render_report(metrics, out / "report.html", base_dirs=[out])
    return EvalResult(metrics, path, report)


def _kept_sections(path: Path, labels: list[str]) -> dict:
    """Sections another command wrote into an existing metrics.json of the same model (`kws stream-eval`'s
    `stream`), so re-running the evaluation does not delete them."""
    if not path.is_file():
        return {}
    try:
        previous = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if previous.get("labels") != list(labels) or "stream" not in previous:
        return {}
    return {"stream": previous["stream"]}


def babble_pool(clips, y_true, speakers, labels: list[str]) -> list[tuple[str, np.ndarray]]:
    """(speaker, clip) pairs to mix babble from: the split's non-keyword words when it has enough of them, since a
    babble of keywords would make "which keyword was said" ambiguous; otherwise every clip that is not silence."""
    from kwslib.labels import SILENCE, UNKNOWN

    ids = {name: labels.index(name) for name in (SILENCE, UNKNOWN) if name in labels}
    unknown = [(s, c) for s, c, y in zip(speakers, clips, y_true) if y == ids.get(UNKNOWN, -1)]
    if len(unknown) >= BABBLE_MIN_UNKNOWN:
        return unknown
    return [(s, c) for s, c, y in zip(speakers, clips, y_true) if y != ids.get(SILENCE, -1)]


def _base_metrics(clf) -> dict:
    """The checkpoint's training metrics (kws.json), so an evaluation keeps the run's training story."""
    trained = dict(clf.meta.get("metrics") or {})
    keep = {k: trained[k] for k in ("model", "data", "protocol", "best_epoch", "train", "validation", "test")
            if k in trained}  # fmt: skip
    return {"schema": METRICS_SCHEMA, **keep}


def _model_type(clf) -> str | None:
    model = getattr(clf, "model", None)
    return getattr(getattr(model, "config", None), "model_type", None)


def _parameters(clf) -> int | None:
    model = getattr(clf, "model", None)
    if model is None:
        return clf.meta.get("parameters")
    return int(sum(p.numel() for p in model.parameters()))


def _write_mistakes(candidates, count, out: Path, labels, y_true, indices, speakers, write_wav) -> list[dict]:
    """The `count` most confident wrong answers, clean ones first, their audio (as the model heard it) under
    `<out>/mistakes/`; paths in metrics.json are relative to `out`."""
    candidates = sorted(candidates, key=lambda c: (c[0].kind != "clean", -float(c[2].max())))[:count]
    folder = out / "mistakes"
    if folder.is_dir():
        for old in folder.glob("*.wav"):
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    mistakes = []
    for n, (condition, k, probs, audio) in enumerate(candidates):
        name = f"mistakes/{n:02d}.wav"
        write_wav(out / name, audio)
        mistakes.append(
            {
                "index": int(indices[k]),
                "speaker_id": speakers[k],
                "label": labels[int(y_true[k])],
                "predicted": labels[int(probs.argmax())],
                "score": float(probs.max()),
                "condition": condition.name,
                "audio": name,
            }
        )
    return mistakes


def data_config_for(clf_or_meta, source: str, protocol: str | None = None, **overrides):
    """A DataConfig for evaluating a model on `source`: the model's protocol (and keywords for `custom`)
    unless `protocol` is given."""
    from kwslib.config import DataConfig

    meta = clf_or_meta if isinstance(clf_or_meta, dict) else clf_or_meta.meta
    protocol = protocol or meta.get("protocol") or "sc12"
    words = None
    if protocol == "custom":
        labels = meta.get("labels") or {}
        # kws.json stores a LabelSet dict; ONNX metadata the plain label list.
        words = labels.get("keywords") if isinstance(labels, dict) else [x for x in labels if not x.startswith("_")]
    return DataConfig(source=source, protocol=protocol, words=words, **overrides)
