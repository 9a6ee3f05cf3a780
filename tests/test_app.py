"""app.py against a real, launched Gradio server: gradio_client for the endpoints, Debian Chromium (Playwright) for
the page. The server runs in this process on 127.0.0.1 and a free port, on the tone-trained `trained_model`."""

import io
import json
import shutil
import socket
import struct
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, tone_of

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # app.py sits at the repository root, beside kwslib

pytest.importorskip("gradio", reason="the app needs kwslib[app]: pip install 'kwslib[app]'")
pytest.importorskip("gradio_client", reason="the app tests need kwslib[app]: pip install 'kwslib[app]'")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

import app  # noqa: E402
from app import AppConfig  # noqa: E402
from kwslib.audio import resample, wav_bytes  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
SCREENS = Path("/tmp/app_screens")
CONDITIONS = "clean,white@10dB,white@0dB,device:telephone,device:lossy_codec"
BROWSER_RATE = 48_000  # what a browser microphone usually records at


# ---------------------------------------------------------------------------------------------
# Fixtures: a runs folder (evaluated run + training-only run), a launched app, clients


@pytest.fixture(scope="module")
def runs(trained_model, tmp_path_factory):
    """runs/tones: the checkpoint, an evaluated metrics.json and its report; runs/tones-train: training metrics only;
    runs/broken.onnx, not a model, and runs/stale, an old metrics.json (the app must say so, not crash)."""
    from kwslib.config import EvalConfig
    from kwslib.evaluation import data_config_for, evaluate
    from kwslib.inference import Classifier

    root = tmp_path_factory.mktemp("app") / "runs"
    shutil.copytree(trained_model / "model", root / "tones" / "model")
    (root / "tones-train").mkdir()
    shutil.copy(trained_model / "metrics.json", root / "tones-train" / "metrics.json")
    model = root / "tones" / "model"
    data = data_config_for(Classifier.load(model), str(trained_model.parent / "sc"))
    cfg = EvalConfig(model=str(model), out=str(root / "tones"), conditions=CONDITIONS, mistakes=2)
    evaluate(cfg, data, progress=False)
    (root / "broken.onnx").write_bytes(b"not an onnx graph")
    (root / "stale").mkdir()
    (root / "stale" / "metrics.json").write_text('{"schema": "kws.metrics/1"}')
    return root


@pytest.fixture(scope="module")
def cfg(runs):
    return AppConfig(
        model=str(runs / "tones" / "model"),
        runs_dir=str(runs),
        reports_dir=str(runs.parent / "reports"),
        max_seconds=10.0,
        max_file_size="1mb",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(cfg):
    """The app for `cfg`, launched in this process; its URL. Closed after the module's tests."""
    demo = app.build_app(cfg)
    app.MODELS.get(cfg.model, threads=cfg.threads)  # as `python app.py` does: loaded before the first visitor
    port = free_port()
    demo.launch(
        **app.launch_options(cfg), server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture
def client(server):
    return Client(server, verbose=False)


def model_value(cfg) -> str:
    return app.find_models(cfg)[0][1]


def write(path: Path, samples: np.ndarray, rate: int = SR) -> Path:
    sf.write(path, samples, rate, subtype="PCM_16")
    return path


def keyword_stream(word: str = "yes") -> np.ndarray:
    """1 s of silence, the word's tone, 1.5 s of silence, at 16 kHz."""
    return np.concatenate([np.zeros(SR, np.float32), tone_of(word), np.zeros(SR * 3 // 2, np.float32)])


def browser_chunks(samples: np.ndarray, folder: Path, seconds: float = 0.1) -> list[Path]:
    """`samples` (16 kHz) as the browser sends them: 48 kHz WAV slices of `seconds`, every one carrying the FIRST
    slice's header (so its sizes are wrong for all the others), as gradio's microphone does."""
    folder.mkdir(parents=True, exist_ok=True)
    audio = resample(samples, SR, BROWSER_RATE)
    n = int(seconds * BROWSER_RATE)
    slices = [wav_bytes(audio[i : i + n], BROWSER_RATE) for i in range(0, len(audio), n)]
    header = slices[0][:44]
    paths = []
    for i, data in enumerate(slices):
        path = folder / f"chunk{i:03d}.wav"
        path.write_bytes(header + data[44:])
        paths.append(path)
    return paths


def feed(client, chunks, model, threshold=0.5, smoothing=3) -> tuple:
    """Every chunk through /live_chunk; the page's (headline, rows, status) after the last one. A chunk that brings
    no detection updates only the status; the other outputs come back as gradio's skip update and keep their value."""
    shown = [None, None, None]
    for chunk in chunks:
        outputs = client.predict(handle_file(str(chunk)), model, threshold, smoothing, False, api_name="/live_chunk")
        for i, value in enumerate(outputs[:3]):
            if value != {"__type__": "update"}:
                shown[i] = value
    return tuple(shown)


# ---------------------------------------------------------------------------------------------
# Pure pieces


def test_config_from_env():
    cfg = AppConfig.from_env({"KWS_MODEL": "m.onnx", "KWS_RUNS_DIR": "/r", "KWS_MAX_SECONDS": "12", "KWS_THREADS": "2"})
    assert (cfg.model, cfg.runs_dir, cfg.max_seconds, cfg.threads) == ("m.onnx", "/r", 12.0, 2)
    assert AppConfig.from_env({}) == AppConfig()
    with pytest.raises(ValueError, match="KWS_MAX_SECONDS 'long' is not a number"):
        AppConfig.from_env({"KWS_MAX_SECONDS": "long"})
    with pytest.raises(ValueError, match="KWS_MAX_SECONDS -1.0 must be greater than 0"):
        AppConfig(max_seconds=-1.0)


def test_fix_wav_sizes_makes_the_header_match_the_samples():
    # A 16-bit mono WAV whose header claims 2 samples but which carries 4 (a later browser slice).
    first = wav_bytes(np.array([0.5, -0.5], np.float32), 8000)
    later = first[:44] + struct.pack("<4h", 1000, 2000, 3000, 4000)
    assert sf.read(io.BytesIO(later), dtype="int16")[0].tolist() == [1000, 2000]  # what a decoder reads unfixed
    fixed = app.fix_wav_sizes(later)
    assert struct.unpack_from("<I", fixed, 40)[0] == 8 and struct.unpack_from("<I", fixed, 4)[0] == len(later) - 8
    assert sf.read(io.BytesIO(fixed), dtype="int16")[0].tolist() == [1000, 2000, 3000, 4000]
    assert app.fix_wav_sizes(b"not a wav") == b"not a wav"


def test_examples_found(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("zebra.wav", "no.wav", "yes.flac", "notes.txt"):
        (flat / name).write_bytes(b"")
    assert [n for _, n in app.find_examples(AppConfig(examples_dir=str(flat)))] == ["yes", "no", "zebra"]
    sc = tmp_path / "sc"  # a Speech Commands layout: one clip per word folder, a test-split clip when listed
    for rel in ("cat/a.wav", "up/a.wav", "up/b.wav", "yes/a.wav", "_background_noise_/n.wav"):
        (sc / rel).parent.mkdir(parents=True, exist_ok=True)
        (sc / rel).write_bytes(b"")
    (sc / "testing_list.txt").write_text("up/b.wav\n")
    found = app.find_examples(AppConfig(examples_dir=str(sc)))
    assert found == [(str(sc / "yes/a.wav"), "yes"), (str(sc / "up/b.wav"), "up"), (str(sc / "cat/a.wav"), "cat")]
    assert app.find_examples(AppConfig(examples_dir=str(tmp_path / "none"))) == []


def test_models_and_runs_found(cfg, runs):
    models = app.find_models(cfg)
    assert models[0] == (f"{runs / 'tones' / 'model'} (PyTorch)", str(runs / "tones" / "model"))
    assert (f"{runs / 'broken.onnx'} (ONNX)", str(runs / "broken.onnx")) in models
    assert [value for _, value in app.find_runs(cfg)] == [str(runs / d) for d in ("stale", "tones", "tones-train")]
    # only the report files are served, never the rest of the runs folder
    assert app.launch_options(cfg)["allowed_paths"] == [str(runs / "tones" / "report.html")]
    with pytest.raises(app.ModelLoadError, match="not one this app offers"):
        app.resolve_model("/etc", cfg)
    with pytest.raises(app.MetricsError, match="not one this app offers"):
        app.resolve_run(str(runs.parent), cfg)


def test_model_cache_loads_once_and_never_makes_the_stream_wait(cfg, runs):
    cache = app.ModelCache()
    model = runs / "tones" / "model"
    first = cache.get_nowait(model)  # None at once, the load started in the background
    deadline = time.monotonic() + 120
    clf = first
    while clf is None and time.monotonic() < deadline:
        time.sleep(0.05)
        clf = cache.get_nowait(model)
    assert first is None and clf is not None and cache.get(model) is clf and len(cache) == 1
    broken = runs / "broken.onnx"
    assert cache.get_nowait(broken) is None
    with pytest.raises(app.ModelLoadError, match="not a loadable ONNX model"):
        while time.monotonic() < deadline:
            cache.get_nowait(broken)
            time.sleep(0.05)


def test_handlers_are_importable_pure_functions(cfg, tmp_path):
    """STYLE rule 8: the handlers run without a server."""
    wav = write(tmp_path / "yes.wav", tone_of("yes"))
    label, summary, *_ = app.classify_upload(str(wav), model_value(cfg), 3, cfg=cfg)
    assert max(label, key=label.get) == "yes" and len(label) == 3
    session = None
    outputs = []
    for chunk in browser_chunks(keyword_stream("yes"), tmp_path / "chunks"):
        *outputs, session = app.live_chunk(str(chunk), model_value(cfg), 0.5, 3, False, session, cfg=cfg)
    assert [d["label"] for d in session.detections] == ["yes"]
    assert session.input_rate == BROWSER_RATE and abs(session.seconds - 3.5) < 0.01
    assert app.live_pause(session).detector.seconds == 0 and abs(session.seconds - 3.5) < 0.01


# ---------------------------------------------------------------------------------------------
# Upload, through gradio_client


def test_upload_returns_the_keyword(client, cfg, tmp_path):
    wav = write(tmp_path / "yes.wav", tone_of("yes"))
    label, summary, waveform, spectrogram, timeline = client.predict(
        handle_file(str(wav)), model_value(cfg), 3, api_name="/classify"
    )
    assert label["label"] == "yes"
    assert [c["label"] for c in label["confidences"]][0] == "yes" and len(label["confidences"]) == 3
    assert summary.startswith("### yes") and "scored in" in summary
    assert waveform["type"] == "plotly" and spectrogram["type"] == "plotly"
    assert json.loads(spectrogram["plot"])["data"][0]["type"] == "heatmap"
    assert timeline == {"__type__": "update", "visible": False, "value": None}  # one clip: no timeline


def test_long_upload_shows_the_window_timeline(client, cfg, tmp_path):
    wav = write(tmp_path / "long.wav", keyword_stream("no"), SR)
    label, summary, _, _, timeline = client.predict(handle_file(str(wav)), model_value(cfg), 3, api_name="/classify")
    assert label["label"] == "no"
    assert "Best window" in summary and "of 3.50 s" in summary
    assert timeline["__type__"] == "update" and timeline["visible"] is True  # shown again after a short clip hid it
    plot = json.loads(timeline["value"]["plot"])
    assert {trace["name"] for trace in plot["data"]} >= {"no"}


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("corrupt.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" * 8, "corrupt.wav: not a readable audio file"),
        ("empty.wav", b"", "empty"),
        ("notes.mp3", b"these are not audio bytes " * 40, "notes.mp3: not a readable audio file"),
    ],
)
def test_bad_upload_gets_a_clear_message(client, cfg, tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    label, summary, waveform, spectrogram, timeline = client.predict(
        handle_file(str(path)), model_value(cfg), 3, api_name="/classify"
    )
    assert not label and waveform is None and spectrogram is None and timeline["visible"] is False  # label: {}
    assert summary.startswith("### ⚠️ Cannot do that\n\n") and message in summary
    text = summary.split("\n\n", 1)[1]
    assert "Traceback" not in text and "/tmp/gradio" not in text and "\n" not in text


def test_too_long_upload_is_refused_and_the_server_carries_on(client, cfg, tmp_path):
    wav = write(tmp_path / "long.wav", np.zeros(12 * SR, np.float32))
    summary = client.predict(handle_file(str(wav)), model_value(cfg), 3, api_name="/classify")[1]
    assert "long.wav is 12.0 s long; this app takes at most 10 s" in summary
    broken = str(cfg.path(cfg.runs_dir) / "broken.onnx")
    summary = client.predict(handle_file(str(wav)), broken, 3, api_name="/classify")[1]
    assert "broken.onnx is not a loadable ONNX model" in summary and "kws export" in summary
    with pytest.raises(AppError, match="Value: /etc is not in the list of choices"):  # gradio checks the dropdown
        client.predict(handle_file(str(wav)), "/etc", 3, api_name="/classify")
    ok = write(tmp_path / "up.wav", tone_of("up"))
    assert client.predict(handle_file(str(ok)), model_value(cfg), 3, api_name="/classify")[0]["label"] == "up"


def test_upload_size_cap(client, server, cfg, tmp_path):
    import httpx

    big = write(tmp_path / "big.wav", np.zeros(40 * SR, np.float32))  # 1.28 MB > the fixture's 1mb cap
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # the client checks first...
        client.predict(handle_file(str(big)), model_value(cfg), 3, api_name="/classify")
    with big.open("rb") as f:  # ...and the server refuses it anyway
        response = httpx.post(f"{server}gradio_api/upload", files=[("files", ("big.wav", f))])
    assert response.status_code == 413


def test_concurrent_clients_are_all_answered(server, cfg, tmp_path):
    """A small version of benchmarks/app_load.py: 5 clients x 2 uploads at once, every one answered correctly."""
    wav = str(write(tmp_path / "yes.wav", tone_of("yes")))
    answers, errors = [], []

    def one_client():
        try:
            c = Client(server, verbose=False)
            for _ in range(2):
                answers.append(c.predict(handle_file(wav), model_value(cfg), 3, api_name="/classify")[0]["label"])
        except Exception as err:  # collected, so a failure names itself instead of hanging a thread
            errors.append(repr(err))

    threads = [threading.Thread(target=one_client) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and answers == ["yes"] * 10


# ---------------------------------------------------------------------------------------------
# Live microphone, through gradio_client


def test_live_chunks_detect_the_keyword(server, cfg, tmp_path):
    """gradio_client cannot drive the `.stream` event itself (2.7.2 has no case for the `process_streaming`
    message), so this feeds the same handler through /live_chunk, one request per browser-style chunk. Each Client
    is one session: its StreamingDetector lives in that session's gr.State between requests."""
    client = Client(server, verbose=False)
    chunks = browser_chunks(keyword_stream("yes"), tmp_path / "chunks")
    headline, rows, status = feed(client, chunks, model_value(cfg))
    assert headline.startswith("### yes")
    assert [row[1] for row in rows["data"]] == ["yes"]
    assert 1.2 <= rows["data"][0][0] <= 2.6  # the word is at 1-2 s; a window ending inside it may already fire
    assert f"{len(chunks)} chunks" in status and "48 kHz → 16 kHz" in status and "Heard 3.5 s" in status
    # another browser (another client) is another session: its own detector, an empty log
    other = Client(server, verbose=False)
    silence = browser_chunks(np.zeros(SR // 2, np.float32), tmp_path / "silence")[0]
    headline, rows, status = feed(other, [silence], model_value(cfg))
    assert headline == "### Listening…" and rows["data"] == [] and "1 chunks" in status


def test_live_controls_reset_the_detector_but_keep_the_log(server, cfg, tmp_path):
    client = Client(server, verbose=False)
    chunks = browser_chunks(keyword_stream("yes"), tmp_path / "chunks")
    _, first, _ = feed(client, chunks, model_value(cfg), smoothing=3)
    # new smoothing: a new detector (nothing of the old audio in it), the log kept and the clock carried on
    headline, rows, status = feed(client, chunks, model_value(cfg), smoothing=1)
    assert [row[1] for row in rows["data"]] == ["yes", "yes"] and "Heard 7.0 s" in status
    assert 3.0 <= rows["data"][0][0] - first["data"][0][0] <= 4.0


# ---------------------------------------------------------------------------------------------
# Results, through gradio_client


def test_results_of_an_evaluated_run(client, cfg, runs, server):
    import httpx

    summary, table, per_keyword, confusion, snr, devices, report = client.predict(
        str(runs / "tones"), api_name="/results"
    )
    assert "accuracy" in summary and "test split" in summary and "No noise" not in summary
    assert table["headers"] == ["keyword", "precision", "recall", "F1", "support"]
    metrics = json.loads((runs / "tones" / "metrics.json").read_text())
    assert [row[0] for row in table["data"]] == metrics["labels"]  # sc12: every label, in the file's order
    assert table["data"][0][2] == round(metrics["test"]["per_label"]["yes"]["recall"], 3)  # read, not recomputed
    for plot in (per_keyword, confusion, snr, devices):  # updates: shown, as a previous run may have hidden them
        assert plot["visible"] is True and plot["value"]["type"] == "plotly"
    assert "white" in [trace.get("name") for trace in json.loads(snr["value"]["plot"])["data"]]
    assert "telephone" in devices["value"]["plot"]
    # the report link is served (inline HTML), and nothing else of the runs folder is
    href = report.split('href="')[1].split('"')[0]
    response = httpx.get(server + href)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{server}gradio_api/file={runs / 'tones' / 'model' / 'config.json'}").status_code == 403


def test_results_of_a_training_only_run_hide_the_condition_plots(client, runs):
    summary, table, _, _, snr, devices, report = client.predict(str(runs / "tones-train"), api_name="/results")
    assert "No noise or device conditions" in summary and "kws evaluate" in summary
    assert snr == {"__type__": "update", "visible": False, "value": None} and snr == devices
    assert "No HTML report" in report


def test_results_of_an_unreadable_metrics_file_say_why(client, runs):
    summary, table, *plots, report = client.predict(str(runs / "stale"), api_name="/results")
    assert summary.startswith("### ⚠️ Cannot do that") and "schema is 'kws.metrics/1'" in summary
    assert "re-run `kws evaluate`" in summary and table["data"] == [] and report == ""
    assert all(plot["visible"] is False for plot in plots)


def test_results_refuse_a_folder_the_app_does_not_offer(client):
    with pytest.raises(ValueError, match="Value: /etc is not in the list of choices"):
        client.predict("/etc", api_name="/results")


# ---------------------------------------------------------------------------------------------
# The page, in Debian Chromium


def _browser(playwright, extra_args=()):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (make sysdeps)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + list(extra_args))


def _shoot(page, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENS / path.name)


def _open(page, server):
    page.goto(server)
    page.get_by_text("kws · keyword spotting").wait_for(timeout=60_000)
    # the model line, filled on page load once the model is loaded: the live stream then starts without a wait
    page.get_by_text("clips at 16 kHz").wait_for(timeout=120_000)


@pytest.mark.slow
def test_page_upload_live_and_results_tabs(server, cfg, tmp_path):
    playwright_api = pytest.importorskip("playwright.sync_api")
    shots = tmp_path / "screens"
    shots.mkdir()
    wav = write(tmp_path / "yes.wav", keyword_stream("yes"))
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 8)
    with playwright_api.sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        _open(page, server)
        _shoot(page, shots, "01_upload_empty")

        page.locator("input[type=file]").first.set_input_files(str(wav))
        page.get_by_text("Best window").wait_for(timeout=60_000)
        assert page.locator("h3", has_text="yes ·").count() == 1
        page.locator(".js-plotly-plot").nth(2).wait_for(timeout=30_000)  # waveform, spectrogram, timeline
        _shoot(page, shots, "02_upload_result")

        page.get_by_role("button", name="Clear").first.click()
        page.locator("input[type=file]").first.set_input_files(str(bad))
        page.locator("h3", has_text="Cannot do that").wait_for(timeout=60_000)
        assert page.get_by_text("corrupt.wav: not a readable audio file").count() >= 1
        time.sleep(1)  # let the warning toast finish sliding in
        _shoot(page, shots, "03_upload_error")
        assert "Traceback" not in page.content() and page.locator("h3", has_text="yes ·").count() == 0
        page.locator("[data-testid=toast-close]").first.click()

        page.get_by_role("tab", name="Live microphone").click()
        page.get_by_role("button", name="Record").wait_for(timeout=30_000)
        _shoot(page, shots, "04_live_idle")

        page.get_by_role("tab", name="Results").click()
        page.get_by_text("Open the full HTML report").wait_for(timeout=60_000)
        page.locator(".js-plotly-plot", has_text="Confusion matrix").wait_for(timeout=30_000)
        page.locator(".js-plotly-plot", has_text="signal-to-noise").wait_for(timeout=30_000)
        page.locator(".js-plotly-plot", has_text="telephone").wait_for(timeout=30_000)
        _shoot(page, shots, "05_results")

        with page.context.expect_page() as report_page:
            page.get_by_text("Open the full HTML report").click()
        report_page.value.wait_for_load_state()
        assert "kws report" in report_page.value.title()
        browser.close()
    assert errors == []
    assert sorted(p.name for p in shots.iterdir()) == [
        "01_upload_empty.png", "02_upload_result.png", "03_upload_error.png", "04_live_idle.png", "05_results.png"
    ]  # fmt: skip


@pytest.mark.slow
def test_page_live_microphone_detects_the_keyword(server, tmp_path):
    """Chromium's fake microphone plays a WAV with the keyword on a loop; the `.stream` event carries it to the
    session's detector and the detection shows on the page."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    shots = tmp_path / "screens"
    shots.mkdir()
    loop = write(tmp_path / "mic.wav", keyword_stream("yes"))
    with playwright_api.sync_playwright() as p:
        browser = _browser(p, [f"--use-file-for-fake-audio-capture={loop}"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        _open(page, server)
        page.get_by_role("tab", name="Live microphone").click()
        page.get_by_role("button", name="Record").click()
        try:
            page.locator("#kws-live-headline", has_text="yes ·").wait_for(timeout=90_000)
        except playwright_api.TimeoutError:
            # Seen once in ~10 full runs, not reproduced: keep what the page said, to tell a silent microphone,
            # a model still loading and a missed detection apart next time.
            _shoot(page, shots, "06_live_timeout")
            status = page.locator("#kws-live-status").inner_text()
            headline = page.locator("#kws-live-headline").inner_text()
            pytest.fail(f"no 'yes' detection in 90 s; headline {headline!r}, status {status!r}, screenshot {shots}")
        time.sleep(1)
        _shoot(page, shots, "06_live_detection")
        page.get_by_role("button", name="Stop").click()
        assert "48 kHz → 16 kHz" in page.get_by_text("Heard").inner_text() or "kHz → 16 kHz" in page.content()
        browser.close()
