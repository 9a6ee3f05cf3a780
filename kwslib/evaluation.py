"""Scoring: classification metrics (scikit-learn) in the shape `metrics.json` stores them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

METRICS_SCHEMA = "kws.metrics/1"


def classification_metrics(y_true, y_pred, labels: list[str], *, loss: float | None = None) -> dict:
    """Accuracy, weighted and macro precision/recall/F1, per-label recall/precision/F1 and support."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    ids = list(range(len(labels)))
    out = {"clips": int(len(y_true)), "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0}
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


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    """Write JSON through a temp file renamed into place, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
