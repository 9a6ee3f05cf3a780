"""The kws demo app (Gradio Blocks): Upload · Live microphone · Results.

    python app.py                                   # http://127.0.0.1:7860, the demo model (make demo)
    KWS_MODEL=runs/demo/model.onnx python app.py    # another default model (a checkpoint folder or a .onnx file)

- Upload: an audio file or a recording -> top-k keywords, the waveform, the log-mel spectrogram and how long it took;
  a file longer than one clip also gets its per-window timeline (`Classifier.predict`'s sliding windows).
- Live microphone: the browser streams short WAV chunks; each browser session gets its own `StreamingDetector`
  (kept in `gr.State`, made on the first chunk, remade when the model or a control changes) and a log of detections.
- Results: any folder with a metrics.json under the runs and reports folders -> summary, per-keyword table and the
  figures of `kwslib.report` (which read metrics.json and never recompute), plus a link to the full HTML report.

Every handler is a module-level function that only calls kwslib (tests import them); models are loaded once per
path and shared by all sessions. Bad input (unreadable or too long audio, a model or metrics.json that cannot be
read) gives a one-line message in place of the result and a warning on the page, never a traceback; anything
unexpected becomes a short `gr.Error` and the server carries on. Nothing is fetched from the network: models, runs
and reports are local paths, and gradio's analytics are off.

Environment (all optional): KWS_MODEL (default model), KWS_RUNS_DIR (where models and runs are found, default
`runs`), KWS_REPORTS_DIR (default `reports`), KWS_MAX_SECONDS (longest upload, default 30), KWS_MAX_FILE_SIZE
(default 10mb), KWS_EXAMPLES_DIR (example clips, default `examples`), KWS_THREADS (torch/onnxruntime threads per
request, default 1). Relative paths are relative to this file's folder. Gradio's own GRADIO_SERVER_NAME /
GRADIO_SERVER_PORT choose the address (127.0.0.1:7860 by default).
"""

from __future__ import annotations

import dataclasses
import functools
import html
import logging
import os
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from kwslib.audio import AudioError, fix_wav_sizes, load_audio, log_mel_spectrogram
from kwslib.config import StreamConfig
from kwslib.evaluation import MetricsError, load_metrics
from kwslib.inference import Classifier, ModelLoadError, Prediction
from kwslib.labels import SC12_KEYWORDS, SILENCE, UNKNOWN
from kwslib.report import figures
from kwslib.streaming import StreamError, StreamingDetector

log = logging.getLogger("kws.app")

APP_DIR = Path(__file__).resolve().parent
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
NON_KEYWORDS = (SILENCE, UNKNOWN)
MAX_TOP_K = 12
MAX_EXAMPLES = 10
EXAMPLE_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
MARKDOWN_SPECIALS = set("\\`*_{}[]<>()#+-.!|~")
LIVE_STREAM_EVERY = 0.1  # seconds per microphone chunk (gradio 6's Audio records 0.1 s slices whatever this says)
LIVE_TIME_LIMIT = 300  # seconds one recording may stream before the browser must press record again
LIVE_HEARD_WARNING = 0.8  # below this share of the wall-clock time heard, the status warns that audio was lost
LIVE_LOG_ROWS = 200  # detections kept per session (newest first in the table)
WAVEFORM_POINTS = 1500  # min/max envelope points drawn for the waveform
PLOT_HEIGHT = 260
GRID_COLOR = "#e5e7eb"
WAVE_COLOR = "#2563eb"
HIGHLIGHT_COLOR = "#f59e0b"  # the best window
MEL_HOP = 160  # samples between log-mel frames (kwslib.audio.log_mel_spectrogram's default, 10 ms)
USER_ERRORS = (AudioError, ModelLoadError, MetricsError, StreamError, ValueError, TypeError)


def _env_help(text: str) -> dict:
    return {"help": text}


@dataclass
class AppConfig:
    """Where the app finds models, runs and reports, and its limits. `from_env` reads the KWS_* variables."""

    model: str = field(
        default="runs/demo/model",
        metadata=_env_help("default model: a checkpoint folder or a .onnx file (env KWS_MODEL)"),
    )
    runs_dir: str = field(
        default="runs", metadata=_env_help("folder searched for checkpoints, .onnx files and runs (env KWS_RUNS_DIR)")
    )
    reports_dir: str = field(
        default="reports", metadata=_env_help("folder searched for runs with HTML reports (env KWS_REPORTS_DIR)")
    )
    max_seconds: float = field(
        default=30.0, metadata=_env_help("longest upload in seconds; longer files are refused (env KWS_MAX_SECONDS)")
    )
    max_file_size: str = field(
        default="10mb", metadata=_env_help("largest upload gradio accepts (env KWS_MAX_FILE_SIZE)")
    )
    examples_dir: str = field(
        default="examples",
        metadata=_env_help(
            "audio files offered as examples: the files in it, or the first clip of each word folder of a Speech "
            "Commands layout such as data/synth (env KWS_EXAMPLES_DIR)"
        ),
    )
    top_k: int = field(default=5, metadata=_env_help("labels shown for an upload by default"))
    upload_concurrency: int = field(
        default=2, metadata=_env_help("uploads scored at the same time (the rest wait in the queue)")
    )
    live_concurrency: int = field(default=8, metadata=_env_help("microphone streams served at the same time"))
    queue_size: int = field(default=64, metadata=_env_help("requests that may wait; more get 'queue full'"))
    threads: int = field(
        default=1,
        metadata=_env_help(
            "intra-op threads per model call (env KWS_THREADS): requests run side by side, and one thread each "
            "does not collapse when another process holds a core (measured: a 2-thread push took 40-800 ms on a "
            "busy 2-core machine, a 1-thread push 5-8 ms)"
        ),
    )

    def __post_init__(self):
        if not self.max_seconds > 0:
            raise ValueError(f"KWS_MAX_SECONDS {self.max_seconds} must be greater than 0, e.g. 30")
        if not 1 <= self.top_k <= MAX_TOP_K:
            raise ValueError(f"top_k {self.top_k} must be between 1 and {MAX_TOP_K}")
        for name in ("upload_concurrency", "live_concurrency", "queue_size", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} {getattr(self, name)} must be at least 1")

    @classmethod
    def from_env(cls, environ: dict | None = None) -> AppConfig:
        env = os.environ if environ is None else environ
        kwargs = {}
        for name, var in (
            ("model", "KWS_MODEL"),
            ("runs_dir", "KWS_RUNS_DIR"),
            ("reports_dir", "KWS_REPORTS_DIR"),
            ("max_file_size", "KWS_MAX_FILE_SIZE"),
            ("examples_dir", "KWS_EXAMPLES_DIR"),
        ):
            if env.get(var):
                kwargs[name] = env[var]
        for name, var, kind, example in (
            ("max_seconds", "KWS_MAX_SECONDS", float, "30"),
            ("threads", "KWS_THREADS", int, "1"),
        ):
            if env.get(var):
                try:
                    kwargs[name] = kind(env[var])
                except ValueError:
                    raise ValueError(f"{var} {env[var]!r} is not a number; use e.g. {example}") from None
        return cls(**kwargs)

    def path(self, value: str) -> Path:
        """`value` as an absolute path; a relative one is relative to the app's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else APP_DIR / p


# ---------------------------------------------------------------------------------------------
# Models: found on disk, loaded once per path


class ModelCache:
    """Classifiers by resolved path, each loaded once; safe to use from gradio's worker threads.

    `get` loads a missing model and waits for it. `get_nowait` never waits: the live stream must answer every chunk
    quickly (measured: gradio's microphone stream stalled for good when its first chunk took the seconds a model
    load takes), so it starts the load in the background and the stream skips audio until the model is there."""

    def __init__(self):
        self._models: dict[str, Classifier] = {}
        self._errors: dict[str, Exception] = {}  # failed background loads, raised by the next get_nowait
        self._loading: set[str] = set()
        self._lock = threading.Lock()  # guards the three above; held only for a moment
        self._load_lock = threading.Lock()  # one load at a time: two sessions never load the same model twice

    def get(self, path: str | os.PathLike, *, threads: int | None = 1) -> Classifier:
        key = str(Path(path).resolve())
        with self._lock:
            clf = self._models.get(key)
        if clf is not None:
            return clf
        with self._load_lock:
            with self._lock:
                clf = self._models.get(key)  # another thread may have loaded it while this one waited
            if clf is None:
                clf = Classifier.load(key, threads=threads)
                with self._lock:
                    self._models[key] = clf
                    self._errors.pop(key, None)
        return clf

    def get_nowait(self, path: str | os.PathLike, *, threads: int | None = 1) -> Classifier | None:
        """The model if it is loaded; else None, with its load started in a background thread. A background load
        that failed raises its error here (once)."""
        key = str(Path(path).resolve())
        with self._lock:
            if key in self._models:
                return self._models[key]
            if key in self._errors:
                raise self._errors.pop(key)
            if key in self._loading:
                return None
            self._loading.add(key)
        threading.Thread(target=self._load_in_background, args=(key, threads), daemon=True).start()
        return None

    def _load_in_background(self, key: str, threads: int | None) -> None:
        try:
            self.get(key, threads=threads)
        except Exception as err:  # kept for the request that asked; a thread has no one else to tell
            with self._lock:
                self._errors[key] = err
        finally:
            with self._lock:
                self._loading.discard(key)

    def __len__(self) -> int:
        return len(self._models)


MODELS = ModelCache()


def _display(path: Path) -> str:
    """A path as the app shows it: relative to the app's folder when inside it."""
    try:
        return str(path.resolve().relative_to(APP_DIR))
    except ValueError:
        return str(path.resolve())


def _is_model(path: Path) -> bool:
    return (path.is_dir() and (path / "config.json").is_file()) or (path.is_file() and path.suffix.lower() == ".onnx")


def find_models(cfg: AppConfig) -> list[tuple[str, str]]:
    """(label, value) of every model the app offers: the default first, then every checkpoint folder (a folder with
    config.json) and .onnx file under the runs folder. The value is the path as `_display` writes it."""
    found: list[Path] = []
    default = cfg.path(cfg.model)
    if _is_model(default):
        found.append(default.resolve())
    runs = cfg.path(cfg.runs_dir)
    if runs.is_dir():
        candidates = [p.parent for p in runs.rglob("config.json")] + list(runs.rglob("*.onnx"))
        for p in sorted({c.resolve() for c in candidates if _is_model(c)}):
            if p not in found and not any(part.startswith(".") for part in p.relative_to(runs.resolve()).parts):
                found.append(p)
    out = []
    for p in found:
        kind = "ONNX" if p.suffix.lower() == ".onnx" else "PyTorch"
        name = _display(p)
        out.append((f"{name} ({kind})", name))
    return out


def find_examples(cfg: AppConfig) -> list[tuple[str, str]]:
    """Up to MAX_EXAMPLES (path, name) audio files for the Upload tab: those directly in the examples folder (named
    by file), else the first clip of each word folder in it (a Speech Commands layout such as data/synth, named by
    word, keywords first, a test-split clip when testing_list.txt says which)."""
    root = cfg.path(cfg.examples_dir)
    if not root.is_dir():
        return []
    rank = {word: i for i, word in enumerate(SC12_KEYWORDS)}  # the keywords first, in their usual order

    def order(name: str) -> tuple:
        return rank.get(name, len(rank)), name

    files = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in EXAMPLE_SUFFIXES]
    found = [(p, p.stem) for p in sorted(files, key=lambda p: order(p.stem))]
    if not found:
        folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))]
        listed = root / "testing_list.txt"  # held-out speakers, when the folder says which they are
        held_out = set(listed.read_text().split()) if listed.is_file() else set()
        for folder in sorted(folders, key=lambda p: order(p.name)):
            clips = sorted(folder.glob("*.wav"))
            tested = [c for c in clips if f"{folder.name}/{c.name}" in held_out]
            if tested or clips:
                found.append(((tested or clips)[0], folder.name))
    return [(str(p), name) for p, name in found[:MAX_EXAMPLES]]


def md(text: str) -> str:
    """`text` safe inside Markdown: labels such as _unknown_ must not turn into italics."""
    return "".join(f"\\{c}" if c in MARKDOWN_SPECIALS else c for c in str(text))


def resolve_model(choice: str | None, cfg: AppConfig) -> Path:
    """The model a request asked for, if the app offers it: the default model or a model under the runs folder."""
    if not choice:
        raise ModelLoadError(
            "no model chosen: pick one above, or start the app with KWS_MODEL=<checkpoint folder or .onnx> "
            "(`make demo` trains runs/demo/model)"
        )
    path = cfg.path(choice).resolve()
    runs = cfg.path(cfg.runs_dir).resolve()
    allowed = path == cfg.path(cfg.model).resolve() or path.is_relative_to(runs)
    if not allowed or not _is_model(path):
        offered = ", ".join(value for _, value in find_models(cfg)) or "none found"
        raise ModelLoadError(f"model {choice!r} is not one this app offers; choose one of: {offered}")
    return path


def describe_model(choice: str | None, *, cfg: AppConfig) -> str:
    """One Markdown line about a model (loads it, so the first request after picking it is not the slow one)."""
    try:
        clf = MODELS.get(resolve_model(choice, cfg), threads=cfg.threads)
    except USER_ERRORS as err:
        return f"⚠️ {_one_line(err)}"
    keywords = [label for label in clf.labels if label not in NON_KEYWORDS]
    return (
        f"**{len(keywords)} keywords** ({md(', '.join(keywords))}) · {clf.backend} · "
        f"{clf.clip_seconds:g} s clips at {clf.sample_rate // 1000} kHz"
    )


# ---------------------------------------------------------------------------------------------
# Errors: one line for the user, the traceback only in the server log


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def user_errors(fn):
    """Turn a handler's exceptions into `gr.Error`: a user mistake shows its own one-line message; anything else
    a short note (the traceback goes to the server log). The server keeps serving either way."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as err:
            raise gr.Error(_one_line(err), title="Cannot do that", print_exception=False) from None
        except Exception as err:
            log.exception("%s failed", fn.__name__)
            raise gr.Error(
                f"Internal error in {fn.__name__} ({type(err).__name__}); the server log has the details.",
                print_exception=False,
            ) from None

    return wrapper


# ---------------------------------------------------------------------------------------------
# Upload


@user_errors
def classify_upload(audio: str | None, model: str | None, top_k: float = 5, *, cfg: AppConfig):
    """An uploaded or recorded file -> (top-k {label: score}, summary Markdown, waveform, log-mel spectrogram,
    per-window timeline or a hidden plot for a single clip).

    Audio or a model the app cannot use is not an exception here: the outputs are cleared, the summary says what is
    wrong (so an API client reads the message there, with the label None) and the page shows a warning."""
    try:
        return _classify(audio, model, top_k, cfg)
    except USER_ERRORS as err:
        message = _one_line(err)
        gr.Warning(message, title="Cannot classify this")
        return None, error_markdown(message), None, None, gr.Plot(value=None, visible=False)


def error_markdown(message: str) -> str:
    """A user-facing error in place of a result: one line, the fix included, no traceback."""
    return f"### ⚠️ Cannot do that\n\n{message}"


def _classify(audio: str | None, model: str | None, top_k: float, cfg: AppConfig) -> tuple:
    if not audio:
        raise AudioError("no audio yet: upload a file or record one, then press Classify")
    clf = MODELS.get(resolve_model(model, cfg), threads=cfg.threads)
    name = Path(audio).name
    started = time.perf_counter()
    try:
        samples = load_audio(audio, clf.sample_rate, name=name)
    except AudioError as err:  # the decoder names the server's temporary path; the user knows the file by its name
        raise AudioError(str(err).replace(f"'{audio}'", name).replace(str(audio), name)) from None
    seconds = len(samples) / clf.sample_rate
    if seconds > cfg.max_seconds:
        raise AudioError(
            f"{name} is {seconds:.1f} s long; this app takes at most {cfg.max_seconds:g} s. Trim it, or run "
            f"`kws predict {name}` locally for long recordings"
        )
    decoded = time.perf_counter()
    pred = clf.predict(samples, top_k=max(1, min(int(top_k), len(clf.labels))), sample_rate=clf.sample_rate)
    scored = time.perf_counter()
    summary = upload_summary(pred, clf, model, decode_ms=1000 * (decoded - started), score_ms=1000 * (scored - decoded))
    timeline = timeline_figure(pred) if pred.windows else None
    return (
        {d["label"]: d["score"] for d in pred.top_k},
        summary,
        waveform_figure(samples, clf.sample_rate, pred.best_window),
        spectrogram_figure(samples, clf.sample_rate),
        gr.Plot(value=timeline, visible=timeline is not None),
    )


def upload_summary(pred: Prediction, clf: Classifier, model: str | None, *, decode_ms: float, score_ms: float) -> str:
    """The Markdown under the label: the answer, the input, and where the time went."""
    lines = [f"### {md(pred.label)} · {pred.score:.1%}"]
    if pred.best_window is not None:
        w = pred.best_window
        lines.append(
            f"Best window **{w.start:.2f}–{w.end:.2f} s** of {pred.seconds:.2f} s "
            f"({len(pred.windows)} windows of {clf.clip_seconds:g} s)."
        )
    else:
        lines.append(f"{pred.seconds:.2f} s of audio (one {clf.clip_seconds:g} s clip).")
    lines.append(f"Decoded in {decode_ms:.0f} ms, scored in **{score_ms:.0f} ms** on {clf.backend} · model `{model}`")
    return "\n\n".join(lines)


def plotly_figure(traces: list[dict], title: str, *, height: int = PLOT_HEIGHT, shade=None, **layout) -> go.Figure:
    """One validated plotly Figure made from plain dicts in a single call, in a light look; `shade` = (x0, x1)
    draws a highlighted span. Built whole because plotly's incremental API is slow: update_layout/add_* deep-copy
    (measured on a busy 2-core machine: 470 ms per upload with `template="plotly_white"` and add_* calls, about
    10 ms per figure this way)."""
    for axis in ("xaxis", "yaxis"):
        layout[axis] = {"gridcolor": GRID_COLOR, "zerolinecolor": GRID_COLOR, **layout.get(axis, {})}
    if shade is not None:
        layout["shapes"] = [
            {"type": "rect", "xref": "x", "yref": "paper", "x0": shade[0], "x1": shade[1], "y0": 0, "y1": 1}
            | {"fillcolor": HIGHLIGHT_COLOR, "opacity": 0.15, "line": {"width": 0}, "layer": "below"}
        ]
    return go.Figure(
        {
            "data": traces,
            "layout": {
                "title": {"text": title, "x": 0.01, "font": {"size": 14}},
                "paper_bgcolor": "white",
                "plot_bgcolor": "white",
                "height": height,
                "margin": {"l": 55, "r": 15, "t": 40, "b": 40},
                **layout,
            },
        }
    )


def waveform_figure(samples: np.ndarray, sample_rate: int, best=None) -> go.Figure:
    """The waveform as a min/max envelope (a long file stays a few thousand points), the best window shaded."""
    n = len(samples)
    step = max(1, n // WAVEFORM_POINTS)
    m = max(step, n // step * step)
    blocks = np.pad(samples, (0, max(0, m - n)))[:m].reshape(-1, step)
    t = (np.arange(len(blocks)) * step + step / 2) / sample_rate
    line = {"type": "scatter", "x": t, "mode": "lines", "line": {"width": 0.5 if step > 1 else 1, "color": WAVE_COLOR}}
    if step == 1:
        traces = [line | {"y": blocks[:, 0], "name": "samples"}]
    else:  # the envelope: max, then min filled up to it
        traces = [line | {"y": blocks.max(axis=1), "name": "max"}, line | {"y": blocks.min(axis=1), "name": "min"}]
        traces[1]["fill"] = "tonexty"
    peak = max(float(np.abs(samples).max()) if n else 1.0, 1e-3)
    return plotly_figure(
        traces,
        "Waveform",
        shade=(best.start, best.end) if best is not None else None,
        showlegend=False,
        xaxis={"title": {"text": "seconds"}, "range": [0, n / sample_rate]},
        yaxis={"range": [-peak * 1.05, peak * 1.05], "zeroline": False},
    )


def spectrogram_figure(samples: np.ndarray, sample_rate: int) -> go.Figure:
    """The log-mel spectrogram the compact model sees (kwslib.audio.log_mel_spectrogram), in dB."""
    mel = log_mel_spectrogram(samples, sample_rate)
    vmax = float(mel.max())
    heatmap = {
        "type": "heatmap",
        "z": mel,
        "x": np.arange(mel.shape[1]) * (MEL_HOP / sample_rate),
        "colorscale": "Viridis",
        "zmin": vmax - 80,
        "zmax": vmax,
        "colorbar": {"title": {"text": "dB"}, "thickness": 10},
        "hovertemplate": "%{x:.2f} s, mel bin %{y}: %{z:.0f} dB<extra></extra>",
    }
    return plotly_figure(
        [heatmap], "Log-mel spectrogram", xaxis={"title": {"text": "seconds"}}, yaxis={"title": {"text": "mel bin"}}
    )


def timeline_figure(pred: Prediction) -> go.Figure:
    """The top label of every window over time (window centres), one colour per label, the best window shaded."""
    by_label: dict[str, list] = {}
    for w in pred.windows:
        by_label.setdefault(w.label, []).append(w)
    traces = [
        {
            "type": "scatter",
            "x": [(w.start + w.end) / 2 for w in ws],
            "y": [w.score for w in ws],
            "mode": "markers",
            "marker": {"size": 8, "opacity": 0.45 if label in NON_KEYWORDS else 0.9},
            "name": label,
            "customdata": [[w.start, w.end] for w in ws],
            "hovertemplate": f"{label}: %{{y:.2f}}<br>window %{{customdata[0]:.2f}}–%{{customdata[1]:.2f}} s"
            "<extra></extra>",
        }
        for label, ws in sorted(by_label.items(), key=lambda kv: (kv[0] in NON_KEYWORDS, kv[0]))
    ]
    best = pred.best_window
    return plotly_figure(
        traces,
        "Per-window timeline (top label of each 1 s window)",
        shade=(best.start, best.end) if best is not None else None,
        xaxis={"title": {"text": "seconds (window centre)"}, "range": [0, pred.seconds]},
        yaxis={"title": {"text": "score"}, "range": [0, 1.05]},
        legend={"orientation": "h", "y": -0.3},
        height=PLOT_HEIGHT + 40,
    )


# ---------------------------------------------------------------------------------------------
# Live microphone


@dataclass
class LiveSession:
    """One browser session's live state: its detector, the settings it was made with, and the detection log."""

    key: tuple
    detector: StreamingDetector
    offset: float = 0.0  # stream seconds before this detector started (settings changed, or recording restarted)
    detections: list[dict] = field(default_factory=list)  # {"time", "label", "score"}, oldest first
    chunks: int = 0
    input_rate: int | None = None
    last_push_ms: float = 0.0
    recording_started: float | None = None  # time.monotonic() when the current recording's audio began
    recording_heard: float = 0.0  # `seconds` when it began

    @property
    def seconds(self) -> float:
        return self.offset + self.detector.seconds


def live_stream_config(threshold: float, smoothing: float, vad: bool) -> StreamConfig:
    """The controls as a `StreamConfig` (its defaults for everything else); ValueError naming a bad control."""
    return dataclasses.replace(StreamConfig(), threshold=float(threshold), smoothing=int(smoothing), vad=bool(vad))


def decode_chunk(chunk: str | tuple | None, sample_rate: int) -> tuple[np.ndarray, int | None]:
    """A microphone chunk (a WAV path from the browser, or (rate, samples) as gradio's numpy type) -> mono float32
    at `sample_rate` (resampled by kwslib.audio) and the rate it arrived at."""
    if chunk is None:
        return np.zeros(0, dtype=np.float32), None
    if isinstance(chunk, (tuple, list)) and len(chunk) == 2:
        rate, samples = int(chunk[0]), np.asarray(chunk[1])
        if samples.size == 0:
            return np.zeros(0, dtype=np.float32), rate
        return load_audio(samples, sample_rate, source_rate=rate, name="microphone chunk"), rate
    data = fix_wav_sizes(Path(chunk).read_bytes())
    rate = struct.unpack_from("<I", data, 24)[0] if data[:4] == b"RIFF" and len(data) >= 28 else None
    if data[:4] == b"RIFF" and len(data) <= 44:
        return np.zeros(0, dtype=np.float32), rate  # a header and no samples yet
    return load_audio(data, sample_rate, name="microphone chunk"), rate


@user_errors
def live_chunk(
    chunk, model: str | None, threshold: float, smoothing: float, vad: bool, session: LiveSession | None, *, cfg
):
    """One microphone chunk -> (last detection Markdown, log rows, status Markdown, timeline (or gr.skip() when
    nothing new), session). The session's detector is made on the first chunk and remade when a control changes."""
    path = resolve_model(model, cfg)
    clf = MODELS.get_nowait(path, threads=cfg.threads)
    if clf is None:  # answer at once; the audio heard while the model loads is not scored
        return gr.skip(), gr.skip(), f"Loading the model `{md(model)}`…", gr.skip(), session
    key = (str(path), float(threshold), int(smoothing), bool(vad))
    if session is None or session.key != key:
        detector = StreamingDetector.from_config(clf, live_stream_config(threshold, smoothing, vad), live=True)
        old = session
        session = LiveSession(key=key, detector=detector)
        if old is not None:  # keep the log and the clock; only the detector starts afresh
            session.offset, session.detections, session.chunks = old.seconds, old.detections, old.chunks
            session.recording_started, session.recording_heard = old.recording_started, old.recording_heard
    try:
        samples, rate = decode_chunk(chunk, clf.sample_rate)
    except AudioError as err:
        gr.Warning(f"Skipped a microphone chunk: {_one_line(err)}")
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), session
    if len(samples) == 0:  # no audio yet (no chunk, or a header alone)
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), session
    log.debug("live chunk %d: %d samples at 16 kHz (input %s Hz)", session.chunks, len(samples), rate)
    if session.recording_started is None:
        session.recording_started = time.monotonic() - len(samples) / clf.sample_rate
        session.recording_heard = session.seconds
    started = time.perf_counter()
    events = session.detector.push(samples)
    session.last_push_ms = 1000 * (time.perf_counter() - started)
    session.chunks += 1
    session.input_rate = rate or session.input_rate
    for d in events:
        session.detections.append({"time": session.offset + d.time, "label": d.label, "score": d.score})
    del session.detections[:-LIVE_LOG_ROWS]
    if not events and session.chunks > 1:  # only the status changes: send only it (this runs every 0.1 s)
        return gr.skip(), gr.skip(), live_status(session), gr.skip(), session
    return (
        live_headline(session),
        live_rows(session),
        live_status(session),
        live_timeline_figure(session.detections),
        session,
    )


def live_pause(session: LiveSession | None) -> LiveSession | None:
    """Recording stopped: the next recording continues the clock, but the detector forgets the old audio."""
    if session is not None:
        session.offset = session.seconds
        session.detector.reset()
        session.recording_started = None
    return session


def live_clear():
    """Forget the session: a fresh detector on the next chunk, an empty log."""
    return "### Listening…", [], "Press **Record** and say a keyword.", live_timeline_figure([]), None


def live_headline(session: LiveSession) -> str:
    if not session.detections:
        return "### Listening…"
    d = session.detections[-1]
    return f"### {md(d['label'])} · {d['score']:.0%} · at {d['time']:.1f} s"


def live_rows(session: LiveSession) -> list[list]:
    return [[round(d["time"], 2), d["label"], round(d["score"], 3)] for d in reversed(session.detections)]


def live_status(session: LiveSession) -> str:
    det = session.detector
    rate = f"{session.input_rate / 1000:g} kHz → {det.sample_rate // 1000} kHz" if session.input_rate else "—"
    text = (
        f"Heard {session.seconds:.1f} s · {session.chunks} chunks · input {rate} · "
        f"last chunk scored in {session.last_push_ms:.0f} ms · {det.scored_windows} windows scored"
    )
    if det.vad is not None:
        text += f" · VAD skipped {det.skipped_windows}"
    if det.dropped_windows:
        text += f" · **{det.dropped_windows} windows dropped** (the server fell behind)"
    if session.recording_started is not None:
        # The browser sends 0.1 s slices and skips those recorded while it waits for the server; say so when it
        # happens, since the detector then hears a shortened stream.
        elapsed = time.monotonic() - session.recording_started
        heard = session.seconds - session.recording_heard
        if elapsed > 2.0 and heard < LIVE_HEARD_WARNING * elapsed:
            text += (
                f" · ⚠️ heard only {heard:.1f} s of the last {elapsed:.1f} s: the browser skips audio while this "
                "busy server answers"
            )
    return text


def live_timeline_figure(detections: list[dict]) -> go.Figure:
    """Detections over stream time (the last minute): one row per keyword, marker size by score."""
    traces = []
    for label in sorted({d["label"] for d in detections}):
        ds = [d for d in detections if d["label"] == label]
        traces.append(
            {
                "type": "scatter",
                "x": [d["time"] for d in ds],
                "y": [label] * len(ds),
                "mode": "markers",
                "marker": {"size": [8 + 14 * d["score"] for d in ds]},
                "name": label,
                "hovertemplate": f"{label} at %{{x:.2f}} s<extra></extra>",
            }
        )
    end = max([d["time"] for d in detections], default=0.0)
    return plotly_figure(
        traces,
        "Detections",
        showlegend=False,
        xaxis={"title": {"text": "seconds"}, "range": [max(0.0, end - 60), max(end + 2, 10)]},
        yaxis={"type": "category", "categoryorder": "category descending"},
        height=PLOT_HEIGHT - 40,
    )


# ---------------------------------------------------------------------------------------------
# Results


def find_runs(cfg: AppConfig) -> list[tuple[str, str]]:
    """(label, value) of every folder holding a metrics.json under the reports and runs folders."""
    seen, out = set(), []
    for root in (cfg.path(cfg.reports_dir), cfg.path(cfg.runs_dir)):
        if not root.is_dir():
            continue
        for metrics in sorted(root.rglob(METRICS_FILE)):
            folder = metrics.parent.resolve()
            if folder in seen or any(part.startswith(".") for part in metrics.relative_to(root).parts):
                continue
            seen.add(folder)
            name = _display(folder)
            out.append((name, name))
    return out


def resolve_run(choice: str | None, cfg: AppConfig) -> Path:
    """The metrics.json of a run the app offers (a folder under the runs or reports folder)."""
    if not choice:
        raise MetricsError("no run chosen: pick one above (a folder with a metrics.json, e.g. runs/demo)")
    folder = cfg.path(choice).resolve()
    roots = [cfg.path(cfg.runs_dir).resolve(), cfg.path(cfg.reports_dir).resolve()]
    if not any(folder.is_relative_to(root) for root in roots) or not (folder / METRICS_FILE).is_file():
        offered = ", ".join(v for _, v in find_runs(cfg)) or "none found"
        raise MetricsError(f"run {choice!r} is not one this app offers; choose one of: {offered}")
    return folder / METRICS_FILE


def find_report(metrics_path: Path, cfg: AppConfig) -> Path | None:
    """The HTML report of a run: beside its metrics.json, else `<reports>/<run name>/report.html`."""
    for candidate in (
        metrics_path.parent / REPORT_FILE,
        cfg.path(cfg.reports_dir) / metrics_path.parent.name / REPORT_FILE,
    ):
        if candidate.is_file():
            return candidate.resolve()
    return None


def report_files(cfg: AppConfig) -> list[str]:
    """The report files the server may send (gradio's allowed_paths): the reports folder and every report.html of
    a run found at start-up, and nothing else of the runs folder (checkpoints stay private)."""
    paths = [str(cfg.path(cfg.reports_dir).resolve())] if cfg.path(cfg.reports_dir).is_dir() else []
    for _, run in find_runs(cfg):
        report = find_report(cfg.path(run) / METRICS_FILE, cfg)
        if report is not None and str(report) not in paths:
            paths.append(str(report))
    return paths


def _split(metrics: dict) -> tuple[str | None, dict]:
    """The split a metrics.json describes (as kwslib.report picks it): evaluated, else test, else validation."""
    evaluation, context = metrics.get("evaluation") or {}, metrics.get("context") or {}
    for name in (evaluation.get("split"), context.get("split"), "test", "validation"):
        data = metrics.get(name) if name else None
        if isinstance(data, dict) and "accuracy" in data:
            return name, data
    return None, {}


def _pct(value) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "—"


def results_summary(metrics: dict, name: str, shown: dict) -> str:
    """Markdown (with a row of HTML cards) summarising a metrics.json: numbers read from it, and what is missing."""
    split_name, split = _split(metrics)
    context = metrics.get("context") or {}
    conditions = (metrics.get("evaluation") or {}).get("conditions") or []
    clips = split.get("clips")
    cards = [
        ("accuracy", _pct(split.get("accuracy"))),
        ("balanced accuracy", _pct(split.get("balanced_accuracy"))),
        ("macro F1", _pct(split.get("f1_macro"))),
        ("ECE", _pct((split.get("calibration") or {}).get("ece"))),
        ("clips", f"{clips:,}" if isinstance(clips, int) else "—"),
        ("conditions", str(len(conditions)) if conditions else "—"),
    ]
    cards_html = "".join(
        f'<div class="kws-card"><div class="kws-card-value">{html.escape(v)}</div>'
        f'<div class="kws-card-name">{html.escape(k)}</div></div>'
        for k, v in cards
    )
    lines = [
        f"### {md(name)}",
        f"Model {_model_line(metrics)} · data `{metrics.get('data', '—')}` · protocol {metrics.get('protocol', '—')}"
        f" · **{split_name or '—'} split** · created {context.get('created', '—')}",
        f'<div class="kws-cards">{cards_html}</div>',
    ]
    missing = [label for key, label in (("snr", "noise"), ("devices", "device")) if key not in shown]
    if missing:
        lines.append(
            f"No {' or '.join(missing)} conditions in this metrics.json"
            + (" (training-only metrics)" if not conditions else "")
            + ": run `kws evaluate` on the model for them."
        )
    return "\n\n".join(lines)


def _model_line(metrics: dict) -> str:
    context = metrics.get("context") or {}
    parts = [
        f"`{context['model']}`" if context.get("model") else None,
        context.get("model_type") or metrics.get("model"),
    ]
    if isinstance(context.get("parameters"), int):
        parts.append(f"{context['parameters']:,} parameters")
    if context.get("backend"):
        parts.append(context["backend"])
    return " · ".join(p for p in parts if p) or "—"


def per_keyword_rows(metrics: dict) -> list[list]:
    """[label, precision, recall, F1, support] of the described split, in the label order of metrics.json."""
    per = _split(metrics)[1].get("per_label") or {}
    order = [label for label in metrics.get("labels", []) if label in per] + [
        k for k in per if k not in metrics.get("labels", [])
    ]
    return [
        [
            label,
            round(per[label]["precision"], 3),
            round(per[label]["recall"], 3),
            round(per[label]["f1"], 3),
            per[label]["support"],
        ]
        for label in order
    ]


def report_link(report: Path | None) -> str:
    if report is None:
        return "No HTML report for this run yet: `kws report <run>/metrics.json --out reports/<run>/report.html`."
    url = "gradio_api/file=" + urllib.parse.quote(str(report))
    return (
        f'<a href="{html.escape(url)}" target="_blank" rel="noopener" class="kws-report-link">'
        f"Open the full HTML report ↗</a> <span class='kws-muted'>{html.escape(_display(report))}</span>"
    )


RESULT_FIGURES = ("per_keyword", "confusion", "snr", "devices")


@user_errors
def show_results(run: str | None, *, cfg: AppConfig):
    """A run -> (summary Markdown, per-keyword rows, per-keyword / confusion / SNR / device figures (hidden when the
    metrics.json has no data for them), report link HTML). A metrics.json that cannot be read gives its one-line
    message in the summary (and a warning on the page) instead."""
    try:
        path = resolve_run(run, cfg)
        metrics = load_metrics(path)
    except USER_ERRORS as err:
        message = _one_line(err)
        gr.Warning(message, title="Cannot show this run")
        hidden = [gr.Plot(value=None, visible=False) for _ in RESULT_FIGURES]
        return error_markdown(message), [], *hidden, ""
    figs = figures(metrics)
    plots = [gr.Plot(value=figs.get(key), visible=key in figs) for key in RESULT_FIGURES]
    return (
        results_summary(metrics, _display(path.parent), figs),
        per_keyword_rows(metrics),
        *plots,
        report_link(find_report(path, cfg)),
    )


# ---------------------------------------------------------------------------------------------
# Layout

CSS = """
.kws-muted { color: var(--body-text-color-subdued); font-size: 0.9em; margin-left: .5em; }
.kws-report-link { font-weight: 600; }
#kws-live-headline h3 { font-size: 1.6em; margin: .2em 0; }
.kws-cards { display: flex; flex-wrap: wrap; gap: .6em; }
.kws-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .5em .9em; min-width: 8em; }
.kws-card-value { font-size: 1.5em; font-weight: 600; }
.kws-card-name { color: var(--body-text-color-subdued); font-size: .85em; }
"""


def build_app(cfg: AppConfig) -> gr.Blocks:
    """The Blocks app for `cfg` (queue set up); launch it with `launch_options(cfg)`."""
    models = find_models(cfg)
    runs = find_runs(cfg)
    default_model = models[0][1] if models else None
    default_run = _default_run(runs, default_model)
    stream_defaults = StreamConfig()

    # analytics off: the app makes no network requests of its own, at start-up or later
    with gr.Blocks(title="kws · keyword spotting", analytics_enabled=False) as demo:
        gr.Markdown(
            "# kws · keyword spotting\nUpload or record a short clip, listen live through your microphone, or "
            "browse evaluation results. Everything runs on CPU in this server."
        )
        with gr.Row(equal_height=True):
            model = gr.Dropdown(
                models, value=default_model, label="Model", scale=2, info="checkpoint folders and .onnx files found"
            )
            model_info = gr.Markdown(padding=True)
        # Described (and so loaded) when a page opens or the choice changes, not when the app is built.
        describe = functools.partial(describe_model, cfg=cfg)
        model.change(describe, model, model_info, api_visibility="private")
        demo.load(describe, model, model_info, api_visibility="private")

        with gr.Tabs():
            with gr.Tab("Upload", id="upload"):
                with gr.Row():
                    with gr.Column(scale=1):
                        audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio")
                        top_k = gr.Slider(1, MAX_TOP_K, value=cfg.top_k, step=1, label="Top k")
                        classify = gr.Button("Classify", variant="primary")
                        gr.Markdown(
                            f"WAV, FLAC, OGG or MP3, up to {cfg.max_seconds:g} s and {cfg.max_file_size.upper()}. "
                            "Longer than one clip: scored in sliding windows.",
                            elem_classes="kws-muted",
                        )
                        picked = example_list(find_examples(cfg), audio)
                    with gr.Column(scale=1):
                        label = gr.Label(label="Top keywords", num_top_classes=MAX_TOP_K)
                        summary = gr.Markdown(label="Summary")
                with gr.Row():
                    waveform = gr.Plot(label="Waveform", show_label=False)
                    spectrogram = gr.Plot(label="Log-mel spectrogram", show_label=False)
                timeline = gr.Plot(label="Timeline", show_label=False, visible=False)
                upload_outputs = [label, summary, waveform, spectrogram, timeline]
                classify_fn = functools.partial(classify_upload, cfg=cfg)
                gr.on(
                    [classify.click, audio.upload, audio.stop_recording],
                    classify_fn,
                    [audio, model, top_k],
                    upload_outputs,
                    api_name="classify",
                    concurrency_limit=cfg.upload_concurrency,
                    concurrency_id="classify",
                )
                if picked is not None:  # an example, once loaded into the input, is classified at once
                    picked.load_input_event.then(
                        classify_fn,
                        [audio, model, top_k],
                        upload_outputs,
                        api_visibility="private",
                        concurrency_limit=cfg.upload_concurrency,
                        concurrency_id="classify",
                    )

            with gr.Tab("Live microphone", id="live"):
                session = gr.State(None)
                with gr.Row():
                    with gr.Column(scale=1):
                        mic = gr.Audio(sources=["microphone"], type="filepath", streaming=True, label="Microphone")
                        threshold = gr.Slider(
                            0.05, 0.99, value=stream_defaults.threshold, step=0.01, label="Threshold",
                            info="a keyword fires when its smoothed score reaches this",
                        )  # fmt: skip
                        smoothing = gr.Slider(
                            1, 10, value=stream_defaults.smoothing, step=1, label="Smoothing (windows)",
                            info=f"average of the last N windows, one every {stream_defaults.hop:g} s",
                        )  # fmt: skip
                        vad = gr.Checkbox(
                            value=stream_defaults.vad, label="Voice activity detection (silero-vad)",
                            info="score only windows with speech in them",
                        )  # fmt: skip
                        clear = gr.Button("Clear log")
                    with gr.Column(scale=1):
                        headline = gr.Markdown("### Listening…", label="Last detection", elem_id="kws-live-headline")
                        status = gr.Markdown(
                            "Press **Record** and say a keyword.", label="Status", elem_id="kws-live-status"
                        )
                        log_table = gr.Dataframe(
                            headers=["time (s)", "keyword", "score"],
                            datatype=["number", "str", "number"],
                            value=[],
                            label="Detections (newest first)",
                            interactive=False,
                            max_height=300,
                        )
                live_plot = gr.Plot(live_timeline_figure([]), label="Detections over time", show_label=False)
                live_inputs = [mic, model, threshold, smoothing, vad, session]
                live_outputs = [headline, log_table, status, live_plot, session]
                mic.stream(
                    functools.partial(live_chunk, cfg=cfg),
                    live_inputs,
                    live_outputs,
                    api_name="live",
                    stream_every=LIVE_STREAM_EVERY,
                    time_limit=LIVE_TIME_LIMIT,
                    concurrency_limit=cfg.live_concurrency,
                    concurrency_id="live",
                    show_progress="hidden",
                )
                # The same handler as one request per chunk, for programs: gradio_client cannot drive a streaming
                # event (it does not know the `process_streaming` message), but each Client is one session, so
                # calling /live_chunk with consecutive chunks keeps one detector in that session's gr.State.
                chunk_api = gr.Button(visible=False)
                chunk_api.click(
                    functools.partial(live_chunk, cfg=cfg),
                    live_inputs,
                    live_outputs,
                    api_name="live_chunk",
                    concurrency_limit=cfg.live_concurrency,
                    concurrency_id="live",
                )
                mic.stop_recording(live_pause, session, session, api_visibility="private")
                clear.click(
                    live_clear, None, [headline, log_table, status, live_plot, session], api_visibility="private"
                )

            with gr.Tab("Results", id="results"):
                with gr.Row(equal_height=True):
                    run = gr.Dropdown(runs, value=default_run, label="Run", scale=2, info="folders with a metrics.json")
                    report = gr.HTML(label="Report", padding=True)
                results_md = gr.Markdown(label="Summary")
                per_keyword = gr.Dataframe(
                    headers=["keyword", "precision", "recall", "F1", "support"],
                    datatype=["str", "number", "number", "number", "number"],
                    label="Per keyword",
                    interactive=False,
                    max_height=420,
                )
                with gr.Row():
                    per_keyword_plot = gr.Plot(label="Per keyword", show_label=False)
                    confusion_plot = gr.Plot(label="Confusion matrix", show_label=False)
                with gr.Row():
                    snr_plot = gr.Plot(label="Accuracy vs SNR", show_label=False)
                    devices_plot = gr.Plot(label="Accuracy per device", show_label=False)
                results_outputs = [
                    results_md,
                    per_keyword,
                    per_keyword_plot,
                    confusion_plot,
                    snr_plot,
                    devices_plot,
                    report,
                ]
                show = functools.partial(show_results, cfg=cfg)
                run.change(show, run, results_outputs, api_name="results")
                if default_run:
                    demo.load(show, run, results_outputs, api_visibility="private")
    demo.queue(max_size=cfg.queue_size, default_concurrency_limit=1)
    return demo


def example_list(examples: list[tuple[str, str]], audio: gr.Audio) -> gr.Examples | None:
    """The examples under the upload box, named by word; None (and a log line) if there are none or gradio refuses
    them (an example outside the folders it may serve must not stop the app from starting)."""
    if not examples:
        return None
    try:
        return gr.Examples(
            [[path] for path, _ in examples],
            inputs=[audio],
            label="Examples",
            example_labels=[name for _, name in examples],
        )
    except Exception as err:  # gradio raises its own InvalidPathError and friends
        log.warning("examples left out: %s", _one_line(err))
        return None


def _default_run(runs: list[tuple[str, str]], model: str | None) -> str | None:
    """The run of the default model if it has results (runs/demo for runs/demo/model), else the first found."""
    if not runs:
        return None
    if model:
        for _, value in runs:
            if Path(model).parent == Path(value) or Path(model).with_suffix("") == Path(value):
                return value
    return runs[0][1]


def launch_options(cfg: AppConfig) -> dict:
    """`demo.launch` arguments every launch needs: the upload cap, the report files it may serve, the look."""
    return {
        "max_file_size": cfg.max_file_size,
        "allowed_paths": report_files(cfg),
        "css": CSS,
        "theme": gr.themes.Soft(),
        "footer_links": ["api", "gradio"],
    }


CONFIG = AppConfig.from_env()
demo = build_app(CONFIG)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own requests to itself
    if find_models(CONFIG):
        try:  # load the default model before the first visitor arrives (local files only)
            MODELS.get(resolve_model(find_models(CONFIG)[0][1], CONFIG), threads=CONFIG.threads)
        except USER_ERRORS as err:
            log.warning("default model not loaded: %s", _one_line(err))
    else:
        log.warning(
            "no model found (KWS_MODEL=%s, KWS_RUNS_DIR=%s): run `make demo` first", CONFIG.model, CONFIG.runs_dir
        )
    demo.launch(**launch_options(CONFIG))
