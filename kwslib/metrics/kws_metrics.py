"""kws keyword-spotting metrics as a local `evaluate` module (loads offline, no hub):

    import evaluate
    metric = evaluate.load("path/to/kwslib/metrics/kws_metrics.py")   # or kwslib.evaluation.metric_module_path()
    metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], labels=["yes", "no"])

The numbers are kwslib.evaluation's, so `kws evaluate` and this module always agree: accuracy, balanced
accuracy, weighted and macro precision/recall/F1, per-label precision/recall/F1/support, and the confusion matrix.
Pass `prediction_scores` ([N, C] probabilities) to add the log loss, calibration (ECE) and one-vs-rest DET curves.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Keyword-spotting classification metrics (kwslib): accuracy, F1, per-label scores, confusion, ECE."
_KWARGS = """
Args:
    predictions: predicted class ids.
    references: true class ids.
    labels: class names in id order (default: "0", "1", ... up to the largest id seen).
    prediction_scores: optional [N, C] class probabilities, for loss, calibration and DET curves.
Returns: a dict shaped like a split of kws metrics.json.
"""


class KwsMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, labels=None, prediction_scores=None):
        from kwslib.evaluation import classification_metrics, confusion, split_metrics

        y_pred, y_true = np.asarray(predictions), np.asarray(references)
        if labels is None:
            top = int(max(y_pred.max(initial=0), y_true.max(initial=0)))
            labels = [str(i) for i in range(top + 1)]
        if prediction_scores is not None:
            return split_metrics(np.asarray(prediction_scores), y_true, list(labels))
        out = classification_metrics(y_true, y_pred, list(labels))
        out["confusion_matrix"] = confusion(y_true, y_pred, len(labels))
        return out
