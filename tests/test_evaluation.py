import json
import math
from unittest import mock

import numpy as np
import pytest

from kwslib.config import EvalConfig
from kwslib.evaluation import (
    METRICS_SCHEMA,
    MetricsError,
    balanced_accuracy,
    calibration,
    classification_metrics,
    confusion,
    data_config_for,
    det_curves,
    evaluate,
    load_metrics,
    log_loss,
    metric_module_path,
    per_speaker,
    split_metrics,
    validate_metrics,
)

LABELS = ["a", "b", "c"]
Y_TRUE = [0, 0, 1, 2]
Y_PRED = [0, 1, 1, 2]


def test_classification_metrics_match_hand_computed_values():
    m = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert m["clips"] == 4
    assert m["accuracy"] == pytest.approx(0.75)
    # a: 1 of 2 found, never wrongly predicted; b: found, once wrongly predicted; c: perfect
    assert m["per_label"]["a"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert m["per_label"]["b"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert m["per_label"]["c"] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1})
    assert m["f1_macro"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m["f1_weighted"] == pytest.approx((2 * 2 / 3 + 2 / 3 + 1) / 4)
    assert m["precision_macro"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert balanced_accuracy([], []) == 0.0


def test_confusion_rows_are_true_labels():
    assert confusion(Y_TRUE, Y_PRED, 3) == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


PROBS = np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.3, 0.7]])
Y2 = [0, 1, 0, 1]


def test_calibration_and_loss_match_hand_computed_values():
    cal = calibration(PROBS, Y2)
    # top-1 confidences .9 (right), .6 (wrong), .8 (right), .7 (right), each alone in its bin
    assert cal["ece"] == pytest.approx((0.1 + 0.6 + 0.2 + 0.3) / 4)
    assert len(cal["bins"]) == 15 and sum(b["count"] for b in cal["bins"]) == 4
    assert [b for b in cal["bins"] if b["count"] == 0][0]["accuracy"] is None
    assert log_loss(PROBS, Y2) == pytest.approx(-(math.log(0.9) + math.log(0.4) + math.log(0.8) + math.log(0.7)) / 4)


def test_det_curves_of_a_perfect_and_a_useless_scorer():
    perfect = det_curves(np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]]), [0, 0, 1, 1], ["x", "y"])
    assert perfect["x"]["auc"] == 1.0 and perfect["x"]["eer"] == 0.0
    useless = det_curves(np.full((4, 2), 0.5), [0, 0, 1, 1], ["x", "y"])
    assert useless["y"]["auc"] == 0.5
    # a label with no positives has no curve
    assert "y" not in det_curves(np.full((2, 2), 0.5), [0, 0], ["x", "y"])


def test_per_speaker_accuracy():
    assert per_speaker([0, 1, 1], [0, 0, 1], ["s1", "s2", "s2"]) == {
        "s1": {"clips": 1, "accuracy": 1.0},
        "s2": {"clips": 2, "accuracy": 0.5},
    }


def test_split_metrics_checks_shapes():
    with pytest.raises(ValueError, match="do not match 3 clips x 2 labels"):
        split_metrics(PROBS, [0, 1, 0], ["x", "y"])


def _minimal(**extra):
    m = {"schema": METRICS_SCHEMA, "labels": ["x", "y"], "test": classification_metrics([0, 1], [0, 1], ["x", "y"])}
    m.update(extra)
    return m


def test_schema_accepts_and_rejects():
    validate_metrics(_minimal())
    bad = _minimal()
    bad["test"]["accuracy"] = 1.5
    with pytest.raises(MetricsError, match="test/accuracy"):
        validate_metrics(bad)
    with pytest.raises(MetricsError, match="kws.metrics/1.*re-run"):
        validate_metrics({**_minimal(), "schema": "kws.metrics/1"})
    with pytest.raises(MetricsError, match="no such file"):
        load_metrics("/nonexistent/metrics.json")


def test_local_evaluate_metric_module_loads_offline_and_agrees():
    import evaluate

    metric = evaluate.load(metric_module_path())
    out = metric.compute(predictions=Y_PRED, references=Y_TRUE, labels=LABELS)
    expected = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert out["accuracy"] == expected["accuracy"] and out["f1_macro"] == pytest.approx(expected["f1_macro"])
    assert out["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    scored = metric.compute(predictions=[0, 0, 0, 1], references=Y2, labels=["x", "y"], prediction_scores=PROBS)
    assert scored["calibration"]["ece"] == pytest.approx(0.3)


# ---------------------------------------------------------------------------------------------
# evaluate() on a trained checkpoint

CONDITIONS = "clean,white@0dB,babble@0dB,device:telephone,device:lossy_codec,level:-30dB"


@pytest.fixture(scope="module")
def evaluated(trained_model, tmp_path_factory):
    from kwslib.inference import Classifier

    out = tmp_path_factory.mktemp("eval")
    clf = Classifier.load(trained_model / "model")
    data = data_config_for(clf, str(trained_model.parent / "sc"))
    cfg = EvalConfig(model=str(trained_model / "model"), out=str(out), conditions=CONDITIONS, mistakes=3)
    return evaluate(cfg, data, progress=False), cfg, data


def test_evaluate_writes_valid_metrics_mistakes_and_report(evaluated, trained_model):
    result, cfg, _ = evaluated
    m = load_metrics(result.metrics_path)
    names = [c["name"] for c in m["evaluation"]["conditions"]]
    # the fixture's test split is one speaker, so babble (other speakers) cannot be made and is reported as skipped
    assert m["evaluation"]["skipped_conditions"] == [{"name": "babble@0dB", "why": mock.ANY}]
    assert "speaker" in m["evaluation"]["skipped_conditions"][0]["why"]
    assert names == [n for n in CONDITIONS.split(",") if n != "babble@0dB"]
    # the clean condition is the same model on the same split as training's own test score
    trained = json.loads((trained_model / "metrics.json").read_text())
    assert m["evaluation"]["conditions"][0]["accuracy"] == pytest.approx(trained["test"]["accuracy"])
    assert m["test"]["accuracy"] == pytest.approx(trained["test"]["accuracy"])
    assert m["train"] == trained["train"]  # the training story is carried over
    assert np.array(m["test"]["confusion_matrix"]).sum() == m["test"]["clips"]
    assert set(m["test"]["per_speaker"]) and 0 <= m["test"]["calibration"]["ece"] <= 1
    runtime = m["evaluation"]["runtime"]
    assert runtime["clips"] == m["test"]["clips"] * len(names) and runtime["clips_per_second"] > 0
    assert m["context"]["backend"] == "torch" and m["context"]["model_name"] == "compact"
    assert m["context"]["versions"]["torch"] and m["context"]["created"]
    for mistake in m["evaluation"]["mistakes"]:
        assert (result.metrics_path.parent / mistake["audio"]).is_file()
        assert mistake["label"] != mistake["predicted"]
    assert result.report_path.is_file()


def test_conditions_are_deterministic(evaluated, tmp_path):
    result, cfg, data = evaluated
    again = evaluate(EvalConfig(**{**cfg.__dict__, "out": str(tmp_path), "report": False}), data, progress=False)
    assert again.metrics["evaluation"]["conditions"] == result.metrics["evaluation"]["conditions"]


def test_evaluate_refuses_labels_the_model_does_not_know(trained_model, tmp_path):
    data = data_config_for({}, str(trained_model.parent / "sc"), "custom")  # custom: every folder is a keyword
    with pytest.raises(ValueError, match="does not know.*--protocol sc12"):
        evaluate(EvalConfig(model=str(trained_model / "model"), out=str(tmp_path)), data, progress=False)


def test_cli_evaluate_report_and_model_card(trained_model, tmp_path, capsys):
    from huggingface_hub import ModelCard

    from kwslib.cli import main

    model = tmp_path / "model"
    import shutil

    shutil.copytree(trained_model / "model", model)
    out = tmp_path / "eval"
    code = main(["evaluate", "--model", str(model), "--data", str(trained_model.parent / "sc"), "--out", str(out),
                 "--conditions", "clean,pink@5dB", "--quiet"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and str(out / "report.html") in printed
    m = load_metrics(out / "metrics.json")
    card = ModelCard.load(model / "README.md")
    assert card.data.pipeline_tag == "audio-classification" and card.data.license == "apache-2.0"
    assert card.data.library_name == "transformers" and card.data.datasets == []
    accuracy = [r for r in card.data.eval_results if r.metric_type == "accuracy"][0]
    assert accuracy.metric_value == pytest.approx(round(m["test"]["accuracy"], 4))
    assert 'pipeline("audio-classification"' in card.text and "Limitations" in card.text

    assert main(["report", str(out / "metrics.json"), str(out), "--out", str(tmp_path / "two.html")]) == 0
    assert (tmp_path / "two.html").stat().st_size > 100_000


def test_cli_evaluate_bad_input_is_one_line(tmp_path, capsys):
    from kwslib.cli import main

    assert main(["evaluate", "--model", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kws: error:") and "no such file or folder" in err and len(err.strip().splitlines()) == 1
    assert main(["evaluate", "--model", str(tmp_path), "--conditions", "fog@3dB"]) == 2
    assert "fog" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": METRICS_SCHEMA}))
    assert main(["report", str(bad), "--out", str(tmp_path / "r.html")]) == 2
    assert "labels" in capsys.readouterr().err


class RecordingApi:
    """Stands in for huggingface_hub.HfApi at the network boundary: records what push asked for."""

    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw["repo_id"], kw))
        return type("Info", (), {"commit_url": f"https://hub.example/{kw['repo_id']}/commit/1"})()


def test_push_uploads_the_folder_with_a_card(trained_model, tmp_path):
    import shutil

    from kwslib.model_card import PushError, push

    model = tmp_path / "model"
    shutil.copytree(trained_model / "model", model)
    api = RecordingApi()
    url = push(model, "me/kws-test", api=api)
    assert url.endswith("me/kws-test/commit/1")
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[1][2]["folder_path"] == str(model) and (model / "README.md").is_file()
    with pytest.raises(PushError, match="not a hub id"):
        push(model, "no-owner", api=api)
    with pytest.raises(PushError, match="not a checkpoint folder"):
        push(tmp_path, "me/x", api=api)
    # the real client, offline: one clear line, no traceback
    with pytest.raises(PushError, match="offline"):
        push(model, "me/kws-test")
