"""Keyword detection on continuous audio, and its evaluation on long streams (miss rate, false accepts per hour).

    detector = StreamingDetector(Classifier.load("runs/demo/model"), hop=0.1, smoothing=3, threshold=0.5)
    for chunk in microphone_or_file_chunks:          # any chunk size, float32 16 kHz mono
        for d in detector.push(chunk):               # -> [Detection(time, label, score)]
            print(d.time, d.label, d.score)
    detector.flush(); detector.reset()
    detector.predict_clip("long.wav")                # the same path for a whole file

How `push` works (openWakeWord's `Model.predict`/`reset` shape, STYLE rule 5):

- A preallocated ring buffer keeps the last `window` seconds. A window is scored at every absolute hop boundary
  (sample `k * hop`, the window being the `window` samples before it), so what is scored depends only on the audio,
  never on how it was cut into chunks.
- Windows are batched. Offline (the default) they are scored in blocks of `batch_size` consecutive hops aligned to
  absolute hop indices, a block as soon as its last window is complete. Models give slightly different floats for the
  same clip in batches of different shapes (measured here: up to 2e-6 in the logits on PyTorch/oneDNN for batches
  under 4); aligned blocks make every batch the same whatever the chunking, so 160-, 1600- and 16000-sample chunks
  give identical events. Live (`max_backlog_seconds` set) every push scores all its windows in one batch at once:
  the least latency, and a late chunk is caught up in one call.
- Smoothing: the mean of the last `smoothing` window probabilities.
- A keyword fires when its smoothed probability reaches its threshold (never `_silence_`/`_unknown_`). Then:
  a *global* refractory period (`refractory` seconds, no keyword at all can fire: one utterance often lifts a
  similar-sounding keyword too, and two different keywords within a second are not something to support), and a
  re-arm rule (a keyword that fired, or was above its threshold when another fired, fires again only after its score
  has dropped below its threshold), so a long utterance whose score stays high fires once however long it lasts.
  `Detection.time` is the end of the window that fired, in seconds of stream time.
- Optional VAD gate (`vad=True`): silero-vad's ONNX model on onnxruntime scores every 512-sample frame (cheap); a
  window without a speech frame is not given to the classifier and counts as `_silence_` in the smoothing.
- Falling behind: live, when a push brings more than `max_backlog_seconds` of unscored hops (a stalled microphone
  delivering a huge chunk), only the newest are scored; the rest are dropped, counted in `dropped_windows` and logged,
  instead of a backlog that grows for ever. Offline processing never drops.

Stream evaluation (`evaluate_stream`, `kws stream-eval`) places a split's keyword clips (trimmed to their voiced part)
and non-keyword words at known random times into the dataset's background noise, runs the detector once, keeps the
smoothed posteriors of every hop and re-runs only the cheap thresholding (the same `Trigger` code) per threshold of
a sweep. Results go to metrics.json's `stream` section, which `kwslib.report` renders.
"""

from __future__ import annotations

import bisect
import csv
import importlib.util
import json
import logging
import math
import os
import queue
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kwslib.config import SAMPLE_RATE, StreamConfig
from kwslib.labels import SILENCE, UNKNOWN

log = logging.getLogger(__name__)

# Detector defaults (the CLI's come from StreamConfig, which uses the same values).
DEFAULT_HOP_SECONDS = 0.1
DEFAULT_SMOOTHING = 3  # windows averaged: 0.3 s of decisions at the default hop
DEFAULT_THRESHOLD = 0.5
DEFAULT_BATCH_SIZE = 16  # hops per offline scoring block
NON_KEYWORDS = (SILENCE, UNKNOWN)

# silero-vad (v5/v6 ONNX): 512-sample frames at 16 kHz, each fed with the 64 samples before it and an LSTM state.
VAD_SAMPLE_RATE = 16_000
VAD_FRAME = 512
VAD_CONTEXT = 64
VAD_STATE_SHAPE = (2, 1, 128)
VAD_THRESHOLD = 0.5  # silero's own default speech threshold
VAD_MODEL_FILE = "silero_vad.onnx"

# Files and offline streams are fed to `push` in chunks of this many seconds (memory stays bounded).
FILE_CHUNK_SECONDS = 1.0

# Microphone input.
MIC_BLOCK_SECONDS = 0.1  # PortAudio callback size: one hop of audio per callback at the default hop
MIC_POLL_SECONDS = 0.2  # how often the main loop wakes up to notice Ctrl+C when no audio arrives

# Stream evaluation.
SPEECH_DBFS = -26.0  # RMS level of a placed word (ITU-T P.56's usual -26 dBov), before its random gain
SPEECH_GAIN_DB = 3.0  # each word gets a gain drawn from +/- this, as real talkers vary
NOISE_SEGMENT_SECONDS = 8.0  # the background changes recording, offset and SNR this often
NOISE_CROSSFADE_SECONDS = 0.05  # equal-power crossfade between background segments
FIRST_WORD_SECONDS = 1.5  # earliest start of the first word: the first window ends at 1 s
MIN_GAP_SECONDS = 0.5  # fewest seconds of background between two words, whatever their length
TAIL_SECONDS = 2.0  # background after the last word, so its detection fits in the stream
DEFAULT_WORD_SECONDS = 1.0  # word length assumed for ground truth without an `end` column (a Speech Commands clip)
MAX_UNUSABLE_CLIPS = 200  # consecutive silent clips before giving up on a split
SWEEP_THRESHOLDS = tuple(round(0.30 + 0.01 * i, 2) for i in range(70)) + (0.995, 0.999)
TARGET_FALSE_ACCEPTS_PER_HOUR = 0.5
STREAM_WAV = "stream.wav"
STREAM_CSV = "stream.csv"


class StreamError(ValueError):
    """A stream that cannot be run or scored: a missing optional back end, a bad ground-truth file, a dataset with
    nothing to place. The message is one line and says what to do."""


@dataclass(frozen=True)
class Detection:
    """A keyword detection: `time` is the stream time (seconds) at the end of the window that fired."""

    time: float
    label: str
    score: float

    def to_dict(self) -> dict:
        return {"time": round(self.time, 3), "label": self.label, "score": round(self.score, 4)}

    def __str__(self) -> str:
        return f"{self.time:9.2f} s  {self.label:<12} {self.score:.3f}"


# ---------------------------------------------------------------------------------------------
# Voice activity detection


def silero_vad_model_path() -> Path:
    """The ONNX model shipped in the silero-vad wheel (found without importing the package, which imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "data" / VAD_MODEL_FILE
        if path.is_file():
            return path
    raise StreamError("--vad needs silero-vad: pip install silero-vad (its ONNX model runs on onnxruntime, no torch)")


class SileroVAD:
    """silero-vad on onnxruntime: `push(samples)` -> speech probability of every 512-sample frame it completes.

    Stateful like the model (LSTM state + the 64 samples before each frame); frames sit at absolute positions
    `512 j`, so any chunking gives the same probabilities. `reset()` starts a new stream."""

    def __init__(self, path: str | os.PathLike | None = None, *, threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise StreamError("--vad needs onnxruntime: pip install onnxruntime") from err
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.path = Path(path) if path else silero_vad_model_path()
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self._sr = np.array(VAD_SAMPLE_RATE, dtype=np.int64)
        self._input = np.zeros((1, VAD_CONTEXT + VAD_FRAME), dtype=np.float32)  # [context | frame]
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros(VAD_STATE_SHAPE, dtype=np.float32)
        self._input[:] = 0.0
        self._fill = 0  # samples of the current frame already in self._input
        self.frames = 0  # frames scored since reset

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Speech probabilities (float32) of the frames completed by `samples`, oldest first."""
        out = []
        i, n = 0, len(samples)
        while i < n:
            take = min(VAD_FRAME - self._fill, n - i)
            start = VAD_CONTEXT + self._fill
            self._input[0, start : start + take] = samples[i : i + take]
            self._fill += take
            i += take
            if self._fill == VAD_FRAME:
                prob, self._state = self.session.run(None, {"input": self._input, "state": self._state, "sr": self._sr})
                out.append(float(prob[0, 0]))
                self._input[0, :VAD_CONTEXT] = self._input[0, -VAD_CONTEXT:]
                self._fill = 0
                self.frames += 1
        return np.asarray(out, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Thresholds, refractory period and re-arming: shared by the live detector and the threshold sweep


class Trigger:
    """Smoothed posteriors -> detections: per-label thresholds, a global refractory period and re-arming.

    `thresholds` has one entry per label, `inf` for labels that never fire. Positions are sample counts, so the
    refractory comparison is exact."""

    def __init__(self, labels: list[str], thresholds: np.ndarray, refractory_samples: int, sample_rate: int):
        self.labels = list(labels)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.refractory_samples = int(refractory_samples)
        self.sample_rate = int(sample_rate)
        self.reset()

    def reset(self) -> None:
        self.armed = np.ones(len(self.labels), dtype=bool)
        self.last_fire: int | None = None

    def rearm(self) -> None:
        """Every label below its threshold: all may fire again (used by the sweep to skip quiet stretches)."""
        self.armed[:] = True

    def step(self, end: int, smoothed: np.ndarray) -> Detection | None:
        """One hop: the window ending at sample `end` with smoothed probabilities `smoothed`."""
        above = smoothed >= self.thresholds
        self.armed |= ~above
        if self.last_fire is not None and end - self.last_fire < self.refractory_samples:
            return None
        candidates = above & self.armed
        if not candidates.any():
            return None
        best = int(np.argmax(np.where(candidates, smoothed, -np.inf)))
        self.armed &= ~above  # whatever was above now fired with this utterance: wait for it to drop
        self.last_fire = end
        return Detection(end / self.sample_rate, self.labels[best], float(smoothed[best]))


def trigger_events(
    labels: list[str],
    ends: np.ndarray,
    smoothed: np.ndarray,
    thresholds: np.ndarray,
    refractory_samples: int,
    sample_rate: int,
) -> list[Detection]:
    """The detections a detector with these thresholds makes on recorded smoothed posteriors (`[N, C]`, one row per
    hop ending at `ends`). Only rows with a label above its threshold are visited: a row with none re-arms every
    label and can fire nothing, which is exactly what `Trigger.step` would do with it."""
    trigger = Trigger(labels, thresholds, refractory_samples, sample_rate)
    rows = np.flatnonzero((smoothed >= trigger.thresholds).any(axis=1))
    events, previous = [], -2
    for i in rows:
        if i != previous + 1:
            trigger.rearm()
        event = trigger.step(int(ends[i]), smoothed[i])
        if event is not None:
            events.append(event)
        previous = i
    return events


def threshold_vector(labels: list[str], threshold: float | Mapping[str, float]) -> np.ndarray:
    """Per-label thresholds: `threshold` for every keyword (a dict: per keyword, DEFAULT_THRESHOLD for the others),
    `inf` for `_silence_`/`_unknown_`. ValueError naming the fix for a bad value or a word that is no keyword."""
    keywords = [label for label in labels if label not in NON_KEYWORDS]
    if isinstance(threshold, Mapping):
        unknown = sorted(set(threshold) - set(keywords))
        if unknown:
            raise ValueError(
                f"--keyword-thresholds {','.join(unknown)}: not a keyword of this model; "
                f"its keywords: {','.join(keywords)}"
            )
        per_label = {k: float(threshold.get(k, DEFAULT_THRESHOLD)) for k in keywords}
    else:
        per_label = {k: float(threshold) for k in keywords}
    for word, value in per_label.items():
        if not 0 < value <= 1:
            raise ValueError(f"--threshold {value} for {word} must be in (0, 1], e.g. 0.5")
    return np.array([per_label.get(label, np.inf) for label in labels], dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# The detector


class StreamingDetector:
    """Keyword detection on a stream of audio chunks; see the module docstring.

    `classifier` is a `kwslib.inference.Classifier`. `window`/`hop`/`refractory` are seconds (`window` defaults to
    the model's clip length), `smoothing` a number of windows, `threshold` a float or `{keyword: threshold}`.
    `vad` is False, True (silero-vad) or a `SileroVAD` (it holds one stream's state: one per detector).
    `max_backlog_seconds=None` is offline mode (never drops); a number is live mode. `record=True` keeps every hop's
    smoothed probabilities (`posteriors()`)."""

    def __init__(
        self,
        classifier,
        *,
        window: float | None = None,
        hop: float = DEFAULT_HOP_SECONDS,
        smoothing: int = DEFAULT_SMOOTHING,
        threshold: float | Mapping[str, float] = DEFAULT_THRESHOLD,
        refractory: float | None = None,
        vad: bool | SileroVAD = False,
        vad_threshold: float = VAD_THRESHOLD,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_backlog_seconds: float | None = None,
        record: bool = False,
        incremental: bool | None = None,
    ):
        self.classifier = classifier
        self.labels = list(classifier.labels)
        self.sample_rate = sr = int(classifier.sample_rate)
        why_not = IncrementalScorer.unsupported(classifier)
        if incremental and why_not:
            raise ValueError(f"--incremental: {why_not}; drop --incremental to score whole windows")
        if incremental and window is not None:
            raise ValueError("--window cannot be set with --incremental: the model's embeddings fix the window")
        wanted = incremental or (incremental is None and window is None)  # auto: unless a window was asked for
        self.incremental = IncrementalScorer(classifier) if wanted and not why_not else None
        if self.incremental is not None:
            window = self.incremental.window_samples / sr
        window = classifier.clip_seconds if window is None else window
        if not (isinstance(window, (int, float)) and window > 0):
            raise ValueError(f"--window {window} must be greater than 0 seconds")
        if not (isinstance(hop, (int, float)) and hop > 0):
            raise ValueError(f"--hop {hop} must be greater than 0 seconds")
        if hop > window:
            raise ValueError(f"--hop {hop} is longer than --window {window}; use a hop of at most the window")
        if isinstance(smoothing, bool) or not isinstance(smoothing, (int, np.integer)) or smoothing < 1:
            raise ValueError(f"--smoothing {smoothing!r} must be a whole number of windows, at least 1")
        if refractory is not None and not refractory >= 0:
            raise ValueError(f"--refractory {refractory} must be 0 or more seconds")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"--batch-size {batch_size!r} must be a whole number, at least 1")
        if max_backlog_seconds is not None and not max_backlog_seconds > 0:
            raise ValueError(f"--max-backlog-seconds {max_backlog_seconds} must be greater than 0")
        if not 0 < vad_threshold < 1:
            raise ValueError(f"--vad-threshold {vad_threshold} must be between 0 and 1, e.g. 0.5")
        # A word stays in view for a window: by default no second keyword may fire on it.
        refractory = window if refractory is None else refractory
        self.window, self.hop, self.refractory = float(window), float(hop), float(refractory)
        self.window_samples = int(round(window * sr))
        self.hop_samples = max(1, int(round(hop * sr)))
        self.smoothing = int(smoothing)
        self.batch_size = int(batch_size)
        self.max_backlog_seconds = max_backlog_seconds
        self.live = max_backlog_seconds is not None
        self.max_backlog_hops = (
            max(1, int(max_backlog_seconds * sr) // self.hop_samples) if max_backlog_seconds is not None else None
        )
        self.record = record
        self.thresholds = threshold_vector(self.labels, threshold)
        self.trigger = Trigger(self.labels, self.thresholds, int(round(refractory * sr)), sr)
        if vad and sr != VAD_SAMPLE_RATE:
            raise ValueError(f"--vad needs a {VAD_SAMPLE_RATE} Hz model; this one runs at {sr} Hz")
        self.vad = (SileroVAD() if vad is True else vad) or None
        self.vad_threshold = float(vad_threshold)
        self._first_hop = -(-self.window_samples // self.hop_samples)  # first k with k * hop >= window
        self._silence_row = np.zeros(len(self.labels), dtype=np.float32)
        if SILENCE in self.labels:
            self._silence_row[self.labels.index(SILENCE)] = 1.0
        # Preallocated buffers: the last `window` samples (position p lives at p % window), the windows waiting to be
        # scored, and the last `smoothing` probability rows.
        self._ring = np.zeros(self.window_samples, dtype=np.float32)
        capacity = max(self.batch_size, self.max_backlog_hops or 1)
        # Incremental scoring reads no window samples: a slot then only stands for its window's end.
        self._batch = np.zeros((capacity, 0 if self.incremental is not None else self.window_samples), dtype=np.float32)
        self._slot_ends = np.zeros(capacity, dtype=np.int64)
        self._history = np.zeros((self.smoothing, len(self.labels)), dtype=np.float32)
        self.reset()

    @classmethod
    def from_config(cls, classifier, cfg: StreamConfig, *, live: bool = False, record: bool = False):
        """The detector a `StreamConfig` describes; `live` turns on dropping past `cfg.max_backlog_seconds`."""
        threshold: float | dict = cfg.threshold
        if cfg.keyword_thresholds:
            keywords = [label for label in classifier.labels if label not in NON_KEYWORDS]
            threshold = {k: cfg.threshold for k in keywords} | cfg.keyword_threshold_map()
        return cls(
            classifier,
            window=cfg.window,
            hop=cfg.hop,
            smoothing=cfg.smoothing,
            threshold=threshold,
            refractory=cfg.refractory,
            vad=cfg.vad,
            vad_threshold=cfg.vad_threshold,
            batch_size=cfg.batch_size,
            max_backlog_seconds=cfg.max_backlog_seconds if live else None,
            record=record,
            incremental=cfg.incremental,
        )

    # -- state -------------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the stream: buffers, smoothing, refractory state, VAD state, counters and recorded posteriors."""
        self._ring[:] = 0.0
        self._total = 0  # samples pushed since reset
        self._pending: list[tuple[int, int | None]] = []  # (window end, batch slot or None = VAD-skipped)
        self._slots = 0
        self._history_count = 0
        self._history_next = 0
        self._speech_ends = np.zeros(0, dtype=np.int64)  # ends of recent speech frames
        self.trigger.reset()
        if self.vad is not None:
            self.vad.reset()
        if self.incremental is not None:
            self.incremental.reset()
        self.scored_windows = 0
        self.skipped_windows = 0
        self.dropped_windows = 0
        self._recorded_ends: list[int] = []
        self._recorded_rows: list[np.ndarray] = []

    @property
    def seconds(self) -> float:
        """Seconds of audio pushed since the last reset."""
        return self._total / self.sample_rate

    def end_padding(self) -> float:
        """Seconds of silence to push after a recording ends: `smoothing` hops, so the window ending at the last
        sample gets as many successors to average with as any other (a word at the very end is not cut short); plus,
        incrementally, half a window, for a word at the very end to reach the middle of one as in training."""
        return self.smoothing * self.hop + (self.window / 2 if self.incremental is not None else 0.0)

    def posteriors(self) -> tuple[np.ndarray, np.ndarray]:
        """(window end of every scored hop in samples `[N]`, smoothed probabilities `[N, C]`); needs `record=True`."""
        if not self.record:
            raise ValueError("posteriors() needs a detector made with record=True")
        rows = np.stack(self._recorded_rows) if self._recorded_rows else np.zeros((0, len(self.labels)))
        return np.asarray(self._recorded_ends, dtype=np.int64), rows

    # -- streaming ---------------------------------------------------------------------------------------------

    def push(self, chunk) -> list[Detection]:
        """Feed the next samples (1-D float, the model's rate, any length); the detections they complete."""
        x = self._check_chunk(chunk)
        if len(x) == 0:
            return []
        t0, t1 = self._total, self._total + len(x)
        if self.vad is not None:
            self._update_speech(x, t0)
        if self.incremental is not None:
            self.incremental.push(x)
        first = max(self._first_hop, t0 // self.hop_samples + 1)
        last = t1 // self.hop_samples
        if self.live and last - first + 1 > self.max_backlog_hops:
            dropped = last - first + 1 - self.max_backlog_hops
            first += dropped
            self.dropped_windows += dropped
            self._history_count = self._history_next = 0  # the kept windows do not follow the old ones
            log.warning(
                "fell behind: dropped %d windows (%.1f s of audio) and scored the newest %d",
                dropped,
                dropped * self.hop,
                self.max_backlog_hops,
            )
        events: list[Detection] = []
        for k in range(first, last + 1):
            end = k * self.hop_samples
            if self.vad is not None and not self._has_speech(end):
                self._pending.append((end, None))
            else:
                if self.incremental is None:
                    self._read_window(end, x, t0, self._batch[self._slots])
                self._slot_ends[self._slots] = end
                self._pending.append((end, self._slots))
                self._slots += 1
            if not self.live and (k + 1) % self.batch_size == 0:
                events += self._score_pending()
        if self.incremental is None:
            self._write_ring(x, t0)
        self._total = t1
        if self.live:
            events += self._score_pending()
        return events

    def flush(self) -> list[Detection]:
        """Score windows still waiting for their block (offline mode, at the end of a stream)."""
        return self._score_pending()

    def predict_clip(
        self,
        audio,
        *,
        sample_rate: int | None = None,
        chunk_seconds: float = FILE_CHUNK_SECONDS,
        padding_seconds: float | None = None,
    ) -> list[Detection]:
        """All detections in one recording (path, bytes or array, any format and rate): reset, push it in chunks of
        `chunk_seconds`, then `padding_seconds` of silence (default `end_padding()`), then flush."""
        samples = self.classifier.decode(audio, sample_rate=sample_rate)
        self.reset()
        padding = self.end_padding() if padding_seconds is None else padding_seconds
        return list(iter_detections(self, file_chunks(samples, self.sample_rate, chunk_seconds, padding)))

    # -- internals ---------------------------------------------------------------------------------------------

    def _check_chunk(self, chunk) -> np.ndarray:
        x = np.asarray(chunk)
        if x.ndim == 2 and 1 in x.shape:
            x = x.reshape(-1)
        if x.ndim != 1:
            raise ValueError(f"audio chunk of shape {x.shape}: push mono samples, shape (n,)")
        if x.dtype.kind != "f":
            raise TypeError(f"audio chunk of dtype {x.dtype}: push float samples in [-1, 1] (kwslib.load_audio)")
        return x.astype(np.float32, copy=False)

    def _read_window(self, end: int, x: np.ndarray, t0: int, out: np.ndarray) -> None:
        """Samples [end - window, end) into `out`: the part before `t0` from the ring, the rest from `x`."""
        start = end - self.window_samples
        if start >= t0:
            out[:] = x[start - t0 : end - t0]
            return
        old = t0 - start  # samples that come from the ring
        i = start % self.window_samples
        first = min(old, self.window_samples - i)
        out[:first] = self._ring[i : i + first]
        out[first:old] = self._ring[: old - first]
        out[old:] = x[: end - t0]

    def _write_ring(self, x: np.ndarray, t0: int) -> None:
        keep = x[-self.window_samples :]
        start = t0 + len(x) - len(keep)
        i = start % self.window_samples
        first = min(len(keep), self.window_samples - i)
        self._ring[i : i + first] = keep[:first]
        self._ring[: len(keep) - first] = keep[first:]

    def _update_speech(self, x: np.ndarray, t0: int) -> None:
        """Run the VAD over `x`; keep the ends of speech frames a window ending in this chunk can still contain."""
        done = self.vad.frames
        probs = self.vad.push(x)
        ends = (done + 1 + np.flatnonzero(probs >= self.vad_threshold)) * VAD_FRAME
        recent = self._speech_ends[self._speech_ends > t0 - self.window_samples]
        self._speech_ends = np.concatenate([recent, ends.astype(np.int64)])

    def _has_speech(self, end: int) -> bool:
        """A speech frame ends inside (end - window, end]: only frames complete by `end`, so chunks cannot matter."""
        i = int(np.searchsorted(self._speech_ends, end, side="right")) - 1
        return i >= 0 and self._speech_ends[i] > end - self.window_samples

    def _score_pending(self) -> list[Detection]:
        if not self._pending:
            return []
        probs = None
        if self.incremental is not None:
            # Embeddings up to the last pending end, even when the VAD skipped every window: the stream goes on.
            probs = self.incremental.probabilities(self._slot_ends[: self._slots], upto=self._pending[-1][0])
        elif self._slots:
            probs = self.classifier.probabilities(self._batch[: self._slots], batch_size=self._slots)
        self.scored_windows += self._slots
        events = []
        for end, slot in self._pending:
            if slot is None:
                self.skipped_windows += 1
            smoothed = self._smooth(self._silence_row if slot is None else probs[slot])
            if self.record:
                self._recorded_ends.append(end)
                self._recorded_rows.append(smoothed)
            event = self.trigger.step(end, smoothed)
            if event is not None:
                events.append(event)
        self._pending.clear()
        self._slots = 0
        return events

    def _smooth(self, row: np.ndarray) -> np.ndarray:
        self._history[self._history_next] = row
        self._history_next = (self._history_next + 1) % self.smoothing
        self._history_count = min(self._history_count + 1, self.smoothing)
        return self._history[: self._history_count].sum(axis=0, dtype=np.float64) / self._history_count

    def __repr__(self) -> str:
        mode = f"live, max backlog {self.max_backlog_seconds} s" if self.live else "offline"
        return (
            f"StreamingDetector(window {self.window:g} s, hop {self.hop} s, smoothing {self.smoothing}, "
            f"refractory {self.refractory} s, vad {self.vad is not None}, incremental {self.incremental is not None}, "
            f"{mode})"
        )


class IncrementalScorer:
    """An embedding model's windows from speech embeddings computed once each (`kwslib.models.embedding`).

    Scoring every window from its samples recomputes the 16 speech embeddings the head sees (one per 80 ms) for each
    hop, though all but one or two were computed for the previous hop. Here `StreamingFrontend` computes each
    embedding once as the audio arrives; the window ending at sample `end` is the head applied to the 16 newest
    embeddings complete by `end` (its samples are the model's `buffer_samples`, 1.98 s, ending up to 80 ms before
    `end`). What the head sees is then 1.98 s of the stream itself, where scoring a 1 s window centres it in zeros,
    as in training: two different inputs, both measured by `kws stream-eval` (`--incremental/--no-incremental`).
    The embeddings equal the ones the front end gives for those samples as one clip, to float rounding
    (tests/test_streaming.py), apart from the mel floor: per frame here, per clip there (`MelSpectrogram`).
    """

    @staticmethod
    def unsupported(classifier) -> str | None:
        """Why `classifier` cannot be scored incrementally, or None if it can."""
        from kwslib.models.embedding import EmbeddingForAudioClassification

        model = getattr(classifier, "model", None)
        if not isinstance(model, EmbeddingForAudioClassification):
            if getattr(classifier, "backend", "") == "onnxruntime":
                return "an exported .onnx graph is scored whole; give the checkpoint folder of an embedding model"
            return "only embedding models (--model embedding) compute reusable embeddings"
        if getattr(classifier.module, "normalize", False):
            return "this checkpoint normalises each window, so its embeddings cannot be reused"
        return None

    def __init__(self, classifier):
        from kwslib.models.embedding import EMBEDDING_DIM, StreamingFrontend, embedding_span

        self.model = classifier.model
        self.frames = int(self.model.config.embedding_frames)
        self.dim = EMBEDDING_DIM
        self.frontend = StreamingFrontend(self.model.frontend)
        self.step = embedding_span(1)[0]  # samples between embeddings (1280)
        self.span = embedding_span(0)[1]  # samples one embedding covers (12,512)
        self.window_samples = self.step * (self.frames - 1) + self.span  # the model's buffer_samples
        self.reset()

    def reset(self) -> None:
        self.frontend.reset()
        self._audio: list[np.ndarray] = []  # pushed, not yet given to the front end
        self._fed = 0  # samples given to the front end
        self._embeddings = np.zeros((0, self.dim), dtype=np.float32)
        self._first = 0  # index of self._embeddings[0] in the stream's embeddings

    def push(self, samples: np.ndarray) -> None:
        self._audio.append(samples)

    def _advance(self, upto: int) -> None:
        """Give the front end the samples up to `upto` (absolute) and keep the embeddings later windows need."""
        import torch

        if upto <= self._fed:
            return
        audio = np.concatenate(self._audio) if len(self._audio) > 1 else self._audio[0]
        take = upto - self._fed
        new = self.frontend.push(torch.from_numpy(np.ascontiguousarray(audio[:take]))).numpy()
        self._audio = [audio[take:]] if take < len(audio) else []
        self._fed = upto
        self._embeddings = np.concatenate([self._embeddings, new])

    def _last_index(self, end: int) -> int:
        """The newest embedding complete at sample `end`."""
        return (end - self.span) // self.step

    def probabilities(self, ends: np.ndarray, *, upto: int) -> np.ndarray:
        """Class probabilities `[len(ends), C]` of the windows ending at `ends` (ascending, all <= `upto`)."""
        import torch

        from kwslib.inference import softmax

        self._advance(upto)
        out = np.zeros((len(ends), self.model.config.num_labels), dtype=np.float32)
        if len(ends):
            last = np.array([self._last_index(int(e)) for e in ends]) - self._first
            if last.min() - self.frames + 1 < 0:
                raise RuntimeError("incremental scoring lost embeddings it still needed")  # a bug, not bad input
            index = last[:, None] + np.arange(1 - self.frames, 1)[None, :]
            features = torch.from_numpy(self._embeddings[index])
            with torch.inference_mode():
                logits = self.model(input_features=features).logits
            out = softmax(logits.float().numpy())
        # Later windows end after `upto`, so they need embeddings from this one on.
        keep_from = max(self._last_index(upto) - self.frames + 1 - self._first, 0)
        self._embeddings = self._embeddings[keep_from:]
        self._first += keep_from
        return out


# ---------------------------------------------------------------------------------------------
# Sources of chunks: files and microphones are thin shells around push()


def iter_detections(detector: StreamingDetector, chunks: Iterable[np.ndarray]) -> Iterator[Detection]:
    """Push every chunk, yielding detections as they come, then flush."""
    for chunk in chunks:
        yield from detector.push(chunk)
    yield from detector.flush()


def file_chunks(
    samples: np.ndarray, sample_rate: int, chunk_seconds: float = FILE_CHUNK_SECONDS, padding_seconds: float = 0.0
) -> Iterator[np.ndarray]:
    """`samples` in chunks of `chunk_seconds`, then `padding_seconds` of zeros."""
    if not chunk_seconds > 0:
        raise ValueError(f"chunk_seconds {chunk_seconds} must be greater than 0")
    size = max(1, int(round(chunk_seconds * sample_rate)))
    for i in range(0, len(samples), size):
        yield samples[i : i + size]
    pad = int(round(padding_seconds * sample_rate))
    for i in range(0, pad, size):
        yield np.zeros(min(size, pad - i), dtype=np.float32)


def import_sounddevice():
    """The sounddevice module, or a one-line StreamError saying how to install it."""
    try:
        import sounddevice
    except ImportError as err:
        raise StreamError(
            "the microphone needs sounddevice: pip install sounddevice (and on Debian/Ubuntu "
            "apt-get install libportaudio2); or pass --file AUDIO"
        ) from err
    except OSError as err:  # the module is there but PortAudio is not
        raise StreamError(f"sounddevice cannot load PortAudio ({err}); apt-get install libportaudio2") from err
    return sounddevice


def list_devices() -> str:
    """The input devices sounddevice sees, one per line (index, name, channels, default rate)."""
    sd = import_sounddevice()
    lines = []
    for i, dev in enumerate(sd.query_devices()):
        if dev["max_input_channels"] > 0:
            lines.append(f"{i:3d}  {dev['name']}  ({dev['max_input_channels']} ch, {dev['default_samplerate']:.0f} Hz)")
    return "\n".join(lines) if lines else "no input devices found"


def microphone_chunks(
    sample_rate: int, *, device: int | str | None = None, block_seconds: float = MIC_BLOCK_SECONDS
) -> Iterator[np.ndarray]:
    """Mono float32 chunks at `sample_rate` from an input device until Ctrl+C (KeyboardInterrupt) or close().

    The PortAudio callback only queues copies; this generator drains everything queued into one chunk, so when
    scoring falls behind the next push gets the whole backlog at once and a live detector drops what it cannot
    catch up on. Devices that do not run at `sample_rate` are resampled (soxr, streaming)."""
    sd = import_sounddevice()
    try:
        rate = int(sd.query_devices(device, "input")["default_samplerate"])
    except (ValueError, sd.PortAudioError) as err:
        raise StreamError(f"--device {device}: {err}; see kws stream --list-devices") from err
    resampler = None
    if rate != sample_rate:
        import soxr

        resampler = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32")
    blocks: queue.Queue = queue.Queue()
    overflows = 0

    def callback(indata, frames, time_info, status):
        nonlocal overflows
        if status.input_overflow:
            overflows += 1
        blocks.put(indata.mean(axis=1, dtype=np.float32))

    stream = sd.InputStream(
        samplerate=rate,
        channels=1,
        dtype="float32",
        blocksize=int(rate * block_seconds),
        device=device,
        callback=callback,
    )
    with stream:
        while True:
            try:
                parts = [blocks.get(timeout=MIC_POLL_SECONDS)]
            except queue.Empty:
                continue
            while not blocks.empty():
                parts.append(blocks.get_nowait())
            x = np.concatenate(parts)
            yield resampler.resample_chunk(x) if resampler else x
            if overflows:
                log.warning("the input device overflowed %d times: audio was lost before it reached kws", overflows)
                overflows = 0


# ---------------------------------------------------------------------------------------------
# Stream evaluation


@dataclass(frozen=True)
class Word:
    """One word in a test stream: start and end in seconds, its label (`_unknown_` for non-keywords), the word."""

    start: float
    end: float
    label: str
    word: str = ""


def read_ground_truth(path: str | os.PathLike) -> list[Word]:
    """A ground-truth CSV: columns `time` (word start, s) and `label`, optional `end` (s) and `word`. Without
    `end`, a word is taken to last DEFAULT_WORD_SECONDS. StreamError naming the file and row otherwise."""
    path = Path(path)
    if not path.is_file():
        raise StreamError(f"--csv {path}: no such file; give a CSV with columns time,label (and optionally end)")
    words = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "time" not in columns or "label" not in columns:
            raise StreamError(f"--csv {path}: columns are {columns}; it needs time and label (and optionally end)")
        for n, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            try:
                start = float(row["time"])
                end = float(row["end"]) if row.get("end") else start + DEFAULT_WORD_SECONDS
            except ValueError:
                raise StreamError(
                    f"--csv {path} line {n}: time/end {row.get('time')!r}/{row.get('end')!r} are not numbers of seconds"
                ) from None
            if not row["label"] or start < 0 or end <= start:
                raise StreamError(f"--csv {path} line {n}: needs a label and 0 <= time < end")
            words.append(Word(start, end, row["label"], row.get("word") or row["label"]))
    return sorted(words, key=lambda w: w.start)


def write_ground_truth(path: str | os.PathLike, words: list[Word]) -> None:
    """Write `time,end,label,word` rows (times in seconds), atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["time", "end", "label", "word"])
        for w in words:
            writer.writerow([f"{w.start:.4f}", f"{w.end:.4f}", w.label, w.word])
    os.replace(tmp, path)


def _loop_crop(recording: np.ndarray, length: int, start: int) -> np.ndarray:
    return np.take(recording, np.arange(start, start + length), mode="wrap")


def noise_bed(
    n_samples: int, noises: list[np.ndarray], rng: np.random.Generator, *, sample_rate: int, snr_db: tuple[float, float]
) -> np.ndarray:
    """Background for a stream: segments of the recordings (random recording, offset and SNR against SPEECH_DBFS),
    crossfaded. White noise when there are no recordings."""
    from kwslib.augment import rms

    out = np.zeros(n_samples, dtype=np.float32)
    segment = int(NOISE_SEGMENT_SECONDS * sample_rate)
    fade = int(NOISE_CROSSFADE_SECONDS * sample_rate)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    fade_in, fade_out = np.sin(0.5 * np.pi * ramp), np.cos(0.5 * np.pi * ramp)  # equal power for unrelated noises
    speech = 10.0 ** (SPEECH_DBFS / 20.0)
    for pos in range(0, n_samples, segment):
        n = min(segment + fade, n_samples - pos)
        if noises:
            recording = noises[int(rng.integers(len(noises)))]
            piece = _loop_crop(recording, n, int(rng.integers(len(recording))))
        else:
            piece = rng.standard_normal(n).astype(np.float32)
        level = speech * 10.0 ** (-float(rng.uniform(*snr_db)) / 20.0)
        piece = piece * np.float32(level / max(rms(piece), 1e-12))
        if pos > 0 and n > fade:
            piece[:fade] *= fade_in
        if pos + n < n_samples:
            piece[-fade:] *= fade_out
        out[pos : pos + n] += piece
    return out


def make_stream(data_cfg, keywords: list[str], cfg: StreamConfig, sample_rate: int = SAMPLE_RATE):
    """A seeded test stream from `data_cfg`'s `cfg.split`: keyword clips (trimmed to their voiced part) and, for
    `cfg.unknown_share` of the words, non-keyword clips, one word every `min_spacing`..`max_spacing` seconds
    (start to start), at SPEECH_DBFS +/- SPEECH_GAIN_DB, over the dataset's background noise at `min_snr_db`..
    `max_snr_db`. Returns (samples, [Word]); the same config gives the same stream."""
    from kwslib.audio import load_audio
    from kwslib.augment import rms
    from kwslib.data import load_data, load_noises
    from kwslib.data.synth import trim_silence

    split = load_data(data_cfg)[cfg.split]
    names = split.features["label"].names
    label_ids = np.asarray(split["label"])
    words_col = split["word"]
    keyword_ids = {names.index(k) for k in keywords if k in names}
    keyword_rows = [i for i, y in enumerate(label_ids) if y in keyword_ids]
    unknown_rows = [i for i, y in enumerate(label_ids) if names[y] == UNKNOWN]
    if not keyword_rows:
        raise StreamError(f"--data {data_cfg.source}: its {cfg.split} split has no clips of {', '.join(keywords)}")
    if not unknown_rows and cfg.unknown_share > 0:
        log.warning(
            "--data %s has no non-keyword words in %s: the stream holds keywords only", data_cfg.source, cfg.split
        )
    noises = [x for x in load_noises(data_cfg) if len(x) and rms(x) > 0]
    if not noises:
        log.warning("--data %s has no _background_noise_ recordings: using white noise", data_cfg.source)

    rng = np.random.default_rng(cfg.seed)
    total = int(round(cfg.minutes * 60 * sample_rate))
    out = noise_bed(total, noises, rng, sample_rate=sample_rate, snr_db=(cfg.min_snr_db, cfg.max_snr_db))

    def cycle(rows: list[int]) -> Iterator[int]:
        while True:
            yield from rng.permutation(rows).tolist()

    keyword_iter, unknown_iter = cycle(keyword_rows), cycle(unknown_rows) if unknown_rows else None
    placed: list[Word] = []
    pos = int(FIRST_WORD_SECONDS * sample_rate)
    tail = int(TAIL_SECONDS * sample_rate)
    unusable = 0
    while True:
        is_unknown = unknown_iter is not None and rng.random() < cfg.unknown_share
        row = next(unknown_iter if is_unknown else keyword_iter)
        spacing = int(rng.uniform(cfg.min_spacing, cfg.max_spacing) * sample_rate)
        gain_db = float(rng.uniform(-SPEECH_GAIN_DB, SPEECH_GAIN_DB))
        clip = trim_silence(load_audio(split[row]["audio"], sample_rate), sample_rate)
        if clip is None or rms(clip) == 0.0:
            unusable += 1
            if unusable > MAX_UNUSABLE_CLIPS:
                raise StreamError(f"--data {data_cfg.source}: {unusable} clips in a row are silent; check the data")
            continue
        unusable = 0
        if pos + len(clip) + tail > total:
            break
        level = 10.0 ** ((SPEECH_DBFS + gain_db) / 20.0)
        out[pos : pos + len(clip)] += clip * np.float32(level / rms(clip))
        label = UNKNOWN if is_unknown else names[label_ids[row]]
        placed.append(Word(pos / sample_rate, (pos + len(clip)) / sample_rate, label, str(words_col[row])))
        pos += max(spacing, len(clip) + int(MIN_GAP_SECONDS * sample_rate))
    np.clip(out, -1.0, 1.0, out=out)
    return out, placed


def match_detections(detections: list[Detection], words: list[Word], keywords: list[str], tolerance: float) -> dict:
    """Hits, misses, false accepts and latencies. A detection of L between the start and end + `tolerance` of a
    not yet matched word L is a hit (latency: detection time - word end); every other detection is a false accept
    (a wrong label included). Words whose label is not in `keywords` are never hits."""
    targets: dict[str, list[Word]] = {}
    for w in words:
        if w.label in keywords:
            targets.setdefault(w.label, []).append(w)
    starts = {label: [w.start for w in ws] for label, ws in targets.items()}
    matched = {label: [False] * len(ws) for label, ws in targets.items()}
    latencies, false_accepts = [], []
    for d in sorted(detections, key=lambda d: d.time):
        hit = None
        ws = targets.get(d.label, [])
        i = bisect.bisect_right(starts.get(d.label, []), d.time) - 1
        while i >= 0 and ws[i].end + tolerance >= d.time - 1e-9 and hit is None:
            if not matched[d.label][i]:
                hit = i
            i -= 1
        if hit is None:
            false_accepts.append(d)
        else:
            matched[d.label][hit] = True
            latencies.append(d.time - ws[hit].end)
    per_keyword = {}
    for k in keywords:
        n, hits = len(targets.get(k, [])), sum(matched.get(k, []))
        per_keyword[k] = {
            "words": n,
            "hits": hits,
            "misses": n - hits,
            "miss_rate": (n - hits) / n if n else None,
            "false_accepts": sum(d.label == k for d in false_accepts),
        }
    n_targets = sum(len(ws) for ws in targets.values())
    hits = sum(sum(m) for m in matched.values())
    return {
        "keywords": n_targets,
        "hits": hits,
        "misses": n_targets - hits,
        "miss_rate": (n_targets - hits) / n_targets if n_targets else None,
        "false_accepts": len(false_accepts),
        "latencies": latencies,
        "per_keyword": per_keyword,
    }


def _latency_ms(latencies: list[float], q: float) -> float | None:
    return round(float(np.percentile(latencies, q)) * 1000.0, 1) if latencies else None


def target_threshold(sweep: list[dict], target: float = TARGET_FALSE_ACCEPTS_PER_HOUR) -> dict | None:
    """The lowest sweep threshold from which on false accepts per hour stay at or below `target` (None if none)."""
    best = None
    for point in sorted(sweep, key=lambda p: -p["threshold"]):
        if point["false_accepts_per_hour"] > target:
            break
        best = point
    return best


def score_stream(
    detector: StreamingDetector,
    samples: np.ndarray,
    words: list[Word],
    *,
    tolerance: float,
    padding_seconds: float = 0.0,
    thresholds: Iterable[float] = SWEEP_THRESHOLDS,
    progress: bool = False,
) -> dict:
    """Run `detector` once over `samples` and score it against `words`: the `stream` section of metrics.json
    (`default` at the detector's thresholds, `sweep` over `thresholds` from the recorded posteriors, `target`)."""
    from tqdm.auto import tqdm

    detector.record = True
    detector.reset()
    sr = detector.sample_rate
    keywords = [label for label in detector.labels if label not in NON_KEYWORDS]
    hours = len(samples) / sr / 3600.0
    chunks = file_chunks(samples, sr, FILE_CHUNK_SECONDS, padding_seconds)
    n_chunks = math.ceil(len(samples) / (FILE_CHUNK_SECONDS * sr)) + math.ceil(padding_seconds / FILE_CHUNK_SECONDS)
    wall, cpu = time.perf_counter(), time.process_time()
    events = list(
        iter_detections(detector, tqdm(chunks, total=n_chunks, desc="kws stream-eval", unit="s", disable=not progress))
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    result = match_detections(events, words, keywords, tolerance)
    latencies = result.pop("latencies")
    per_keyword = result.pop("per_keyword")
    finite = detector.thresholds[np.isfinite(detector.thresholds)]
    default = {
        "threshold": float(finite[0]) if len(set(finite.tolist())) == 1 else None,
        **{k: v for k, v in result.items()},
        "false_accepts_per_hour": result["false_accepts"] / hours,
        "latency_ms_median": _latency_ms(latencies, 50),
        "latency_ms_p90": _latency_ms(latencies, 90),
        "hours": hours,
        "non_keywords": sum(w.label not in keywords for w in words),
    }
    if default["threshold"] is None:  # per-keyword thresholds: report them instead of one number
        default.pop("threshold")
        default["thresholds"] = ", ".join(
            f"{label}={t:g}" for label, t in zip(detector.labels, detector.thresholds) if np.isfinite(t)
        )

    ends, smoothed = detector.posteriors()
    keyword_mask = np.array([label not in NON_KEYWORDS for label in detector.labels])
    sweep = []
    for t in thresholds:
        vector = np.where(keyword_mask, float(t), np.inf)
        found = trigger_events(detector.labels, ends, smoothed, vector, detector.trigger.refractory_samples, sr)
        m = match_detections(found, words, keywords, tolerance)
        sweep.append(
            {
                "threshold": float(t),
                "miss_rate": m["miss_rate"],
                "false_accepts_per_hour": m["false_accepts"] / hours,
                "hits": m["hits"],
                "false_accepts": m["false_accepts"],
            }
        )
    reached = target_threshold([p for p in sweep if p["miss_rate"] is not None])
    return {
        "default": default,
        "target": {
            "false_accepts_per_hour": TARGET_FALSE_ACCEPTS_PER_HOUR,
            "threshold": reached["threshold"] if reached else None,
            "miss_rate": reached["miss_rate"] if reached else None,
            "achieved_false_accepts_per_hour": reached["false_accepts_per_hour"] if reached else None,
        },
        "sweep": sweep,
        "per_keyword": per_keyword,
        "detector": {
            "window": detector.window,
            "hop": detector.hop,
            "smoothing": detector.smoothing,
            "refractory": detector.refractory,
            "vad": detector.vad is not None,
            "vad_threshold": detector.vad_threshold if detector.vad is not None else None,
            "batch_size": detector.batch_size,
            "incremental": detector.incremental is not None,
        },
        "runtime": {
            "seconds": round(wall, 3),
            "cpu_seconds": round(cpu, 3),
            "real_time_factor": wall / max(len(samples) / sr, 1e-9),
            "scored_windows": detector.scored_windows,
            "skipped_windows": detector.skipped_windows,
        },
        "_events": events,  # popped by evaluate_stream; kept here so callers of score_stream can inspect them
    }


@dataclass
class StreamEvalResult:
    stream: dict  # the `stream` section written to metrics.json
    detections: list[Detection]  # at the configured thresholds
    words: list[Word]
    metrics_path: Path
    wav_path: Path | None = None
    csv_path: Path | None = None


def evaluate_stream(cfg: StreamConfig, *, classifier=None, progress: bool = True) -> StreamEvalResult:
    """`kws stream-eval`: build (or read, with `cfg.wav` + `cfg.csv`) a test stream, run the detector of `cfg`
    over it once, score the default thresholds and the sweep, and set `stream` in `<cfg.out>/metrics.json`."""
    from kwslib.audio import load_audio, write_wav
    from kwslib.evaluation import data_config_for
    from kwslib.inference import Classifier

    clf = classifier or Classifier.load(cfg.model)
    detector = StreamingDetector.from_config(clf, cfg, record=True)  # bad thresholds fail before any audio work
    out = Path(cfg.out)
    keywords = [label for label in clf.labels if label not in NON_KEYWORDS]
    wav_path = csv_path = None
    if cfg.wav:
        words = read_ground_truth(cfg.csv)
        samples = load_audio(cfg.wav, clf.sample_rate)
        padding = detector.end_padding()
        source = {"source": "file", "wav": str(cfg.wav), "csv": str(cfg.csv)}
    else:
        # Every non-keyword clip of the split is a candidate, not the usual 10 % sample of them.
        data_cfg = data_config_for(clf, cfg.data, unknown_percentage=100.0)
        samples, words = make_stream(data_cfg, keywords, cfg, clf.sample_rate)
        padding = 0.0
        source = {
            "source": "generated",
            "data": cfg.data,
            "split": cfg.split,
            "seed": cfg.seed,
            "minutes": cfg.minutes,
            "snr_db": [cfg.min_snr_db, cfg.max_snr_db],
            "spacing_seconds": [cfg.min_spacing, cfg.max_spacing],
            "unknown_share": cfg.unknown_share,
        }
        if cfg.save_stream:
            out.mkdir(parents=True, exist_ok=True)
            wav_path, csv_path = out / STREAM_WAV, out / STREAM_CSV
            write_wav(wav_path, samples, clf.sample_rate)
            write_ground_truth(csv_path, words)
            source.update(wav=str(wav_path), csv=str(csv_path))
    if not any(w.label in keywords for w in words):
        raise StreamError(f"the stream has no words of this model's keywords ({', '.join(keywords)}) to detect")
    tolerance = detector.window if cfg.tolerance is None else cfg.tolerance
    section = score_stream(detector, samples, words, tolerance=tolerance, padding_seconds=padding, progress=progress)
    detections = section.pop("_events")
    section = {
        "model": str(cfg.model),
        "backend": clf.backend,
        **section,
        "stream": {
            **source,
            "seconds": len(samples) / clf.sample_rate,
            "words": len(words),
            "tolerance_seconds": tolerance,
        },
    }
    path = write_stream_metrics(out, section, clf, cfg)
    return StreamEvalResult(section, detections, words, path, wav_path, csv_path)


def write_stream_metrics(out: Path, section: dict, clf, cfg: StreamConfig) -> Path:
    """Set `stream` in `<out>/metrics.json` (made minimal if missing), validated, written atomically."""
    from kwslib.evaluation import METRICS_SCHEMA, validate_metrics, write_json_atomic
    from kwslib.provenance import run_context

    path = out / "metrics.json"
    if path.is_file():
        try:
            metrics = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise StreamError(f"--out {path} is not valid JSON ({err}); delete it or pick another --out") from err
        if metrics.get("labels") != list(clf.labels):
            raise StreamError(
                f"--out {path} holds results for labels {metrics.get('labels')}, not this model's {list(clf.labels)}; "
                "pick another --out"
            )
    else:
        fields = {
            "model": str(cfg.model),
            "backend": clf.backend,
            "data": cfg.data if not cfg.wav else str(cfg.wav),
            "protocol": clf.protocol,
        }
        context = run_context(**{k: v for k, v in fields.items() if v is not None})
        metrics = {"schema": METRICS_SCHEMA, "labels": list(clf.labels), "context": context}
    metrics["stream"] = section
    validate_metrics(metrics, name=str(path))
    write_json_atomic(path, metrics)
    return path
