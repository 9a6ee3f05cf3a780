import copy
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import tone
from plotly.offline import get_plotlyjs

from kwslib.audio import write_wav
from kwslib.evaluation import MetricsError, validate_metrics
from kwslib.report import SECTIONS, compare_figures, figures, render_report, render_report_files

LABELS = ["yes", "no", "_silence_", "_unknown_"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _split_metrics(accuracy: float, labels=LABELS, *, full: bool = True) -> dict:
    per_label = {
        label: {"precision": 0.9 - 0.05 * j, "recall": 0.85 - 0.05 * j, "f1": 0.87 - 0.05 * j, "support": 25 + i}
        for i, label in enumerate(labels)
        for j in [i % 10]
    }
    out = {
        "clips": 106,
        "accuracy": accuracy,
        "balanced_accuracy": 0.8123,
        "precision_weighted": 0.8345,
        "recall_weighted": 0.8402,
        "f1_weighted": 0.8374,
        "precision_macro": 0.8301,
        "recall_macro": 0.8123,
        "f1_macro": 0.8211,
        "loss": 0.4567,
        "per_label": per_label,
    }
    if not full:
        return out
    n = len(labels)
    out["confusion_matrix"] = [[20 if i == j else (i + j) % 3 for j in range(n)] for i in range(n)]
    out["per_speaker"] = {f"spk{i:02d}": {"clips": 10 + i, "accuracy": round(0.55 + 0.05 * i, 2)} for i in range(8)}
    out["calibration"] = {
        "ece": 0.0432,
        "bins": [
            {"lower": 0.0, "upper": 0.2, "count": 0, "confidence": None, "accuracy": None},
            {"lower": 0.2, "upper": 0.4, "count": 4, "confidence": 0.31, "accuracy": 0.25},
            {"lower": 0.4, "upper": 0.6, "count": 10, "confidence": 0.52, "accuracy": 0.4},
            {"lower": 0.6, "upper": 0.8, "count": 22, "confidence": 0.71, "accuracy": 0.68},
            {"lower": 0.8, "upper": 1.0, "count": 70, "confidence": 0.93, "accuracy": 0.95},
        ],
    }
    out["det"] = {
        label: {
            "fpr": [1.0, 0.3, 0.1 + 0.01 * i, 0.02, 0.0],
            "fnr": [0.0, 0.02, 0.08 + 0.01 * i, 0.2, 1.0],
            "thresholds": [0.0, 0.25, 0.5, 0.75, 1.0],
            "auc": 0.97 - 0.01 * i,
            "eer": 0.09 + 0.01 * i,
        }
        for i, label in enumerate(labels)
    }
    return out


def _condition(name: str, accuracy: float, **kind) -> dict:
    base = {"noise": None, "snr_db": None, "device": None, "level_db": None}
    return {
        "name": name,
        **base,
        **kind,
        "clips": 106,
        "accuracy": accuracy,
        "balanced_accuracy": accuracy - 0.01,
        "f1_macro": accuracy - 0.02,
        "f1_weighted": accuracy - 0.015,
        "loss": 0.5,
    }


def _conditions() -> list[dict]:
    """12 conditions: clean, 7 noise, 2 devices, 2 levels."""
    out = [_condition("clean", 0.8402, kind="clean")]
    for noise, snr, acc in [
        ("white", 10, 0.71),
        ("white", 0, 0.52),
        ("babble", 10, 0.74),
        ("babble", 0, 0.4321),
        ("babble", -5, 0.31),
        ("pink", 5, 0.66),
        ("background", 0, 0.58),
    ]:
        out.append(_condition(f"{noise}@{snr}dB", acc, kind="noise", noise=noise, snr_db=snr))
    out.append(_condition("device:telephone", 0.6789, kind="device", device="telephone"))
    out.append(_condition("device:far_field", 0.5876, kind="device", device="far_field"))
    out.append(_condition("level:-30dB", 0.8, kind="level", level_db=-30))
    out.append(_condition("level:+20dB", 0.77, kind="level", level_db=20))
    return out


def make_metrics(folder: Path, labels=LABELS) -> dict:
    """A full evaluated metrics.json (12 conditions, 3 mistakes with their WAVs under `folder`)."""
    (folder / "mistakes").mkdir(parents=True, exist_ok=True)
    mistakes = []
    for i, (label, predicted, condition) in enumerate(
        [(labels[0], labels[1], "babble@0dB"), (labels[1], labels[3], "clean"), (labels[3], labels[0], "white@0dB")]
    ):
        audio = f"mistakes/{i:03d}.wav"
        write_wav(folder / audio, tone(300 + 100 * i, seconds=0.25))
        mistakes.append(
            {
                "index": 10 + i,
                "speaker_id": f"spk{i:02d}",
                "label": label,
                "predicted": predicted,
                "score": 0.97 - 0.1 * i,
                "condition": condition,
                "audio": audio,
            }
        )
    metrics = {
        "schema": "kws.metrics/2",
        "labels": list(labels),
        "context": {
            "model": "runs/demo/model",
            "model_name": "compact",
            "model_type": "kws-compact",
            "parameters": 67890,
            "backend": "torch",
            "data": "data/synth",
            "protocol": "sc12",
            "split": "test",
            "created": "2025-11-22T10:00:00Z",
            "git_commit": "abc1234def",
            "kwslib": "0.1.0",
            "versions": {"torch": "2.13.0", "transformers": "5.23.0", "onnxruntime": None},
            "host": {"cpu": "test-cpu", "cores": 2},
        },
        "train": {"epochs": 30, "steps": 4500, "seconds": 812.3, "samples_per_second": 1234.5},
        "validation": _split_metrics(0.8601, labels, full=False),
        "test": _split_metrics(0.8402, labels),
        "evaluation": {
            "split": "test",
            "conditions": _conditions(),
            "skipped_conditions": [{"name": "background@-5dB", "why": "no _background_noise_ folder"}],
            "mistakes": mistakes,
            "runtime": {
                "seconds": 12.5,
                "clips": 1272,
                "clips_per_second": 101.76,
                "batch_size": 64,
                "backend": "torch",
            },
        },
    }
    return validate_metrics(metrics)


def training_only(labels=LABELS) -> dict:
    """What `kws train` writes: no context, no evaluation, split metrics without the sliced parts."""
    return validate_metrics(
        {
            "schema": "kws.metrics/2",
            "model": "compact",
            "data": "data/synth",
            "protocol": "sc12",
            "labels": list(labels),
            "best_epoch": 7,
            "train": {"epochs": 10, "steps": 500, "seconds": 60.2, "step_seconds": 50.1, "samples_per_second": 900.0},
            "validation": _split_metrics(0.9012, labels, full=False),
            "test": _split_metrics(0.8877, labels, full=False),
        }
    )


STREAM = {
    "default": {
        "threshold": 0.8,
        "miss_rate": 0.064,
        "false_accepts_per_hour": 1.7,
        "latency_ms_median": 240.0,
        "hours": 2.5,
        "hits": 187,
    },
    "sweep": [
        {"threshold": t, "miss_rate": m, "false_accepts_per_hour": fa}
        for t, m, fa in [(0.5, 0.02, 9.0), (0.7, 0.04, 3.1), (0.8, 0.064, 1.7), (0.9, 0.12, 0.4)]
    ],
}


@pytest.fixture
def run_dir(tmp_path):
    folder = tmp_path / "run"
    metrics = make_metrics(folder)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def _render(tmp_path, metrics, **kwargs) -> str:
    return render_report(metrics, tmp_path / "out" / "report.html", **kwargs).read_text()


def test_full_report_has_every_section_and_the_numbers_of_metrics_json(run_dir, tmp_path):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    page = _render(tmp_path, metrics, base_dirs=[run_dir])
    for section_id, _ in SECTIONS:
        if section_id != "streaming":
            assert f'<section id="{section_id}">' in page, section_id
    assert 'id="streaming"' not in page  # no stream section in this metrics.json: skipped silently
    for text in [
        "84.0%",  # test accuracy
        "81.2%",  # balanced accuracy
        "82.1%",  # macro F1
        "0.4567",  # loss
        "4.3%",  # ECE
        "43.2%",  # babble at 0 dB
        "58.8%",  # worst device, far_field
        "far_field",
        "12.5 s",
        "102 clips/s",
        "67,890",  # parameters
        "abc1234def",
        "2025-11-22T10:00:00Z",
        "torch 2.13.0",
        "background@-5dB",  # skipped condition and why
        "no _background_noise_ folder",
        "spk00",  # worst speaker
    ]:
        assert text in page, text
    assert "not in this metrics.json" not in page
    assert page.count("data:audio/wav;base64,") == 3
    assert page.count('class="plotly-graph-div"') == len(figures(metrics)) == 7


def test_report_is_self_contained(run_dir, tmp_path):
    page = _render(tmp_path, make_metrics(run_dir), base_dirs=[run_dir])
    assert page.count("<script") == page.count("</script>")
    assert not re.search(r"<(script|img|iframe|audio|source)\b[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", page, re.I)
    assert not re.search(r"<link\b", page, re.I)
    assert not re.search(r"@import|url\(\s*[\"']?(https?:)?//", page, re.I)
    # plotly.js is in once, not once per figure; outside it (whose defaults name URLs it never fetches here)
    # the page refers to no URL at all.
    plotly_js = get_plotlyjs()
    assert page.count(plotly_js) == 1
    assert "http" not in page.replace(plotly_js, "")
    assert 4_000_000 < len(page.encode()) < 6_500_000


def test_mistake_audio_missing_or_null_shows_a_note(run_dir, tmp_path):
    metrics = make_metrics(run_dir)
    (run_dir / metrics["evaluation"]["mistakes"][0]["audio"]).unlink()
    metrics["evaluation"]["mistakes"][1]["audio"] = None
    page = _render(tmp_path, metrics, base_dirs=[run_dir])
    assert page.count("data:audio/wav;base64,") == 1
    assert "audio not found" in page and "no audio saved" in page
    # Relative paths start from base_dirs, not from the current folder.
    assert "data:audio/wav;base64," not in _render(tmp_path, metrics)


def test_text_from_metrics_is_escaped(run_dir, tmp_path):
    evil = "<script>alert(1)</script>"
    metrics = make_metrics(run_dir, labels=["yes", evil, "<b>bold</b>", "_unknown_"])
    metrics["context"]["model_name"] = "<img src=x onerror=alert(2)>"
    metrics["evaluation"]["mistakes"][0]["speaker_id"] = "</td><script>alert(3)</script>"
    page = _render(tmp_path, metrics, base_dirs=[run_dir])
    assert evil not in page and "alert(3)</script>" not in page and "<b>bold</b>" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page


def test_training_only_metrics_renders_with_notes(tmp_path):
    metrics = training_only()
    assert set(figures(metrics)) == {"per_keyword"}
    page = _render(tmp_path, metrics)
    for section_id, _ in SECTIONS:
        if section_id != "streaming":
            assert f'<section id="{section_id}">' in page, section_id
    notes = re.findall(r'<p class="note">[^<]*not in this metrics\.json: run <code>kws evaluate</code>', page)
    # summary, confusion, noise, devices, speakers, det, calibration, mistakes, context
    assert len(notes) == 9
    assert "88.8%" in page and "best epoch 7" in page and "validation accuracy 90.1%" in page
    assert page.count('class="plotly-graph-div"') == 1


def test_stream_section_is_rendered_when_present_and_tolerant_of_odd_shapes(run_dir, tmp_path):
    metrics = make_metrics(run_dir)
    metrics["stream"] = copy.deepcopy(STREAM)
    assert set(figures(metrics)) == {
        "per_keyword",
        "confusion",
        "snr",
        "devices",
        "speakers",
        "det",
        "calibration",
        "stream",
    }
    page = _render(tmp_path, metrics, base_dirs=[run_dir])
    assert '<section id="streaming">' in page
    assert "6.4%" in page and "240 ms" in page and "hits" in page and "187" in page
    assert "Detector:" not in page  # no detector settings recorded: no line
    metrics["stream"]["detector"] = {
        "window": 1.982,
        "hop": 0.1,
        "smoothing": 3,
        "refractory": 1.982,
        "incremental": True,
    }
    metrics["stream"]["stream"] = {"tolerance_seconds": 1.982}
    page = _render(tmp_path, metrics, base_dirs=[run_dir])
    assert "Detector: a 1.98 s window every 0.1 s, scored from speech embeddings computed once each" in page
    assert "up to 1.98 s after a word&#x27;s end counts as a hit" in page
    # the schema checks the stream section, so a malformed one is refused with the field named, not half-drawn
    for odd in [None, [], "soon", {"sweep": "x"}, {"default": {"note": None}, "sweep": [{"threshold": 0.5}, 3]}]:
        metrics["stream"] = odd
        with pytest.raises(MetricsError, match="stream"):
            figures(metrics)
    del metrics["stream"]
    assert 'id="streaming"' not in _render(tmp_path, metrics, base_dirs=[run_dir])


def test_two_runs_make_a_comparison(run_dir, tmp_path):
    full, trained = make_metrics(run_dir), training_only()
    full["stream"] = copy.deepcopy(STREAM)
    figs = compare_figures([full, trained], ["baseline-run", "bigger-run"])
    assert set(figs) == {"per_keyword", "confusion", "snr", "devices", "speakers", "det", "calibration", "stream"}
    assert len(figs["per_keyword"].data) == 2  # one bar series per run
    page = _render(tmp_path, [full, trained], names=["baseline-run", "bigger-run"], base_dirs=[run_dir, tmp_path])
    assert "baseline-run" in page and "bigger-run" in page
    assert "kws comparison: baseline-run vs bigger-run" in page
    for section_id in ("summary", "per-keyword", "noise", "devices", "det", "calibration", "streaming", "context"):
        assert f'<section id="{section_id}">' in page, section_id
    assert "<b>88.8%</b>" in page  # the better test accuracy is bold
    assert page.count('class="plotly-graph-div"') == len(figs)
    with pytest.raises(ValueError, match="one name per run"):
        compare_figures([full, trained], ["only-one"])


def test_render_report_files_names_runs_by_file_and_finds_their_audio(run_dir, tmp_path):
    other = tmp_path / "other"
    (other).mkdir()
    (other / "b.json").write_text(json.dumps(training_only()))
    out = render_report_files([run_dir / "metrics.json", other / "b.json"], tmp_path / "cmp.html")
    page = out.read_text()
    assert "kws comparison: run vs b" in page
    single = render_report_files([run_dir], tmp_path / "one.html").read_text()
    assert single.count("data:audio/wav;base64,") == 3


def test_write_is_atomic_and_overwrites(run_dir, tmp_path):
    out = tmp_path / "reports" / "demo" / "report.html"
    out.parent.mkdir(parents=True)
    out.write_text("old")
    assert render_report(make_metrics(run_dir), out, base_dirs=[run_dir]) == out
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


def test_bad_metrics_files_raise_metrics_error(tmp_path):
    with pytest.raises(MetricsError, match="no such file"):
        render_report_files([tmp_path / "missing.json"], tmp_path / "r.html")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(MetricsError, match="not valid JSON"):
        render_report_files([tmp_path / "broken.json"], tmp_path / "r.html")
    bad = training_only()
    bad["test"]["accuracy"] = 1.5
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(MetricsError, match="accuracy"):
        render_report_files([tmp_path / "bad.json"], tmp_path / "r.html")
    with pytest.raises(MetricsError):
        render_report({"labels": ["yes"]}, tmp_path / "r.html")
    with pytest.raises(ValueError, match="at least one"):
        render_report([], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_figures_follow_metrics_json(run_dir):
    metrics = make_metrics(run_dir)
    figs = figures(metrics)
    assert list(figs["per_keyword"].data[2].y) == [metrics["test"]["per_label"][k]["f1"] for k in LABELS]
    heat = figs["confusion"].data[0]
    assert np.allclose(np.sum(heat.z, axis=1), 1.0) and heat.customdata[0][0] == 20
    snr_names = {trace.name for trace in figs["snr"].data}
    assert {"white", "babble", "pink", "background"} <= snr_names and any(n.startswith("clean") for n in snr_names)
    assert len(figs["det"].data) == 1 + 2 * len(LABELS)  # the EER line, then a curve and an EER marker per label


@pytest.mark.slow
def test_report_opens_in_headless_chromium_without_errors(run_dir, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    metrics = make_metrics(run_dir)
    metrics["stream"] = copy.deepcopy(STREAM)
    metrics["evaluation"]["mistakes"][2]["speaker_id"] = "<img src=x onerror=alert(1)>"  # must stay text
    single = render_report(metrics, tmp_path / "report.html", base_dirs=[run_dir])
    compared = render_report([metrics, training_only()], tmp_path / "compare.html", names=["full", "trained"])
    expected = {single: len(figures(metrics)), compared: len(compare_figures([metrics, training_only()], ["a", "b"]))}

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for path, n_figures in expected.items():
                errors, remote = [], []
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.on("console", lambda msg, errors=errors: errors.append(msg.text) if msg.type == "error" else None)
                page.on("pageerror", lambda err, errors=errors: errors.append(str(err)))
                page.on("dialog", lambda dialog, errors=errors: errors.append(f"dialog {dialog.message}"))
                page.on(
                    "request", lambda req, remote=remote: remote.append(req.url) if req.url.startswith("http") else None
                )
                page.goto(path.as_uri(), wait_until="load")
                page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {n_figures}")
                page.wait_for_timeout(500)
                assert page.locator(".js-plotly-plot").count() == n_figures
                if path == single:
                    # The per-keyword table sorts by F1 when its header is clicked: lowest first, then highest.
                    table = page.locator("#per-keyword table.sortable")
                    header = table.locator("th", has_text="F1")
                    first = table.locator("tbody tr").first.locator("td").first
                    header.click()
                    assert first.inner_text() == "_unknown_"
                    header.click()
                    assert first.inner_text() == "yes"
                    assert page.locator("#mistakes audio").count() == 3
                shot = tmp_path / f"{path.stem}.png"
                page.screenshot(path=str(shot), full_page=True)
                # A copy outside tmp_path to look at after the run.
                shutil.copy(
                    shot, "/tmp/report_screenshot.png" if path == single else "/tmp/report_compare_screenshot.png"
                )
                assert errors == [] and remote == [], (errors, remote)
                page.close()
        finally:
            browser.close()
