"""kwslib.streaming: the streaming detector, its VAD gate and backlog handling, stream evaluation, `kws stream`.

Real components throughout: the `trained_model` compact checkpoint (it knows tones: `tone_of("yes")` is yes),
silero-vad's real ONNX model, real WAV files. The tone model was trained on clean tones and noise crops, so the
planted words sit on digital silence unless a test is about noise.
"""

import json
import logging

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, tone_of
from scipy.signal import lfilter

from kwslib.cli import main
from kwslib.config import StreamConfig
from kwslib.evaluation import load_metrics
from kwslib.inference import Classifier
from kwslib.streaming import (
    Detection,
    SileroVAD,
    StreamingDetector,
    Word,
    evaluate_stream,
    match_detections,
    read_ground_truth,
    trigger_events,
)


@pytest.fixture(scope="module")
def clf(trained_model):
    return Classifier.load(trained_model / "model")


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), dtype=np.float32)


def planted(*parts) -> np.ndarray:
    """Concatenate (word, seconds) tones and float gaps of silence: planted(2.0, ("yes", 1.0), 3.0)."""
    out = []
    for part in parts:
        out.append(silence(part) if isinstance(part, (int, float)) else tone_of(part[0], part[1]))
    return np.concatenate(out)


def vowel(seconds: float = 0.8, f0: float = 120.0, peak: float = 0.3) -> np.ndarray:
    """A synthetic /a/ (glottal pulses through three formant resonators): speech to silero-vad, not a pure tone."""
    rng = np.random.default_rng(0)
    n = int(seconds * SR)
    x = np.zeros(n)
    t = 0.0
    while t < n:
        x[int(t)] = 1.0
        t += SR / (f0 * (1 + 0.02 * rng.standard_normal()))
    for freq, bandwidth in ((700, 80), (1220, 90), (2600, 120)):
        r = np.exp(-np.pi * bandwidth / SR)
        x = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * freq / SR), r * r], x)
    x *= np.sin(np.pi * np.arange(n) / n) ** 0.5
    return (peak * x / np.abs(x).max()).astype(np.float32)


def spoken_yes() -> np.ndarray:
    """A vowel, then the yes tone: silero-vad hears speech (at any frame alignment), the classifier hears yes.
    (A vowel on top of the tone is not robust: the steady tone makes silero's answer depend on frame alignment.)"""
    return np.concatenate([vowel(0.5), tone_of("yes")])


def run(detector: StreamingDetector, samples: np.ndarray, chunk: int) -> list[Detection]:
    detector.reset()
    events = []
    for i in range(0, len(samples), chunk):
        events += detector.push(samples[i : i + chunk])
    return events + detector.flush()


# -- detection ---------------------------------------------------------------------------------------------------


def test_keyword_in_silence_fires_once_with_its_label(clf):
    events = StreamingDetector(clf).predict_clip(planted(2.0, ("yes", 1.0), 3.0))
    assert [e.label for e in events] == ["yes"]
    assert 2.0 < events[0].time <= 3.3
    assert events[0].score >= 0.5


def test_keyword_in_low_noise_fires_once(clf):
    rng = np.random.default_rng(0)
    x = planted(2.0, ("yes", 1.0), 3.0) + 0.003 * rng.standard_normal(6 * SR).astype(np.float32)
    events = StreamingDetector(clf).predict_clip(x, padding_seconds=0.0)
    assert [e.label for e in events] == ["yes"]


@pytest.mark.parametrize("kind", ["silence", "white"])
def test_no_keyword_fires_nothing(clf, kind):
    rng = np.random.default_rng(1)
    x = silence(20.0) if kind == "silence" else (0.1 * rng.standard_normal(20 * SR)).astype(np.float32)
    detector = StreamingDetector(clf, threshold=0.5)
    assert detector.predict_clip(x, padding_seconds=0.0) == []
    assert detector.scored_windows == 191  # hops at 1.0, 1.1, ..., 20.0 s


@pytest.mark.parametrize("vad", [False, True])
def test_chunk_size_does_not_change_events(clf, vad):
    x = np.concatenate([planted(1.5), spoken_yes(), planted(2.3, ("no", 1.0), 0.7, ("yes", 0.6), 2.0)])
    detector = StreamingDetector(clf, vad=vad, threshold=0.3, refractory=0.5)
    runs = {chunk: run(detector, x, chunk) for chunk in (160, 1600, 16000, 777)}
    assert runs[160], "the stream should hold detections"
    assert runs[160] == runs[1600] == runs[16000] == runs[777]  # exact: same times, labels and float scores


def test_latency_after_word_end_is_small(clf):
    word_end = 3.0
    events = StreamingDetector(clf, hop=0.1).predict_clip(planted(2.0, ("yes", 1.0), 3.0))
    assert len(events) == 1
    assert events[0].time - word_end <= 0.3


def test_long_utterance_fires_once_and_separate_ones_fire_each(clf):
    detector = StreamingDetector(clf, refractory=1.0)
    long_word = detector.predict_clip(planted(2.0, ("yes", 3.0), 3.0))
    assert [e.label for e in long_word] == ["yes"]
    two = detector.predict_clip(planted(2.0, ("yes", 1.0), 2.5, ("yes", 1.0), 3.0))
    assert [e.label for e in two] == ["yes", "yes"]
    assert two[1].time - two[0].time > 1.0


def test_refractory_period_blocks_any_keyword(clf):
    x = planted(2.0, ("yes", 1.0), 0.3, ("no", 1.0), 3.0)
    blocked = StreamingDetector(clf, refractory=2.5).predict_clip(x)
    free = StreamingDetector(clf, refractory=0.0).predict_clip(x)
    assert [e.label for e in blocked] == ["yes"]
    assert [e.label for e in free] == ["yes", "no"]


def test_per_keyword_threshold(clf):
    x = planted(2.0, ("yes", 1.0), 2.5, ("no", 1.0), 3.0)
    low = StreamingDetector(clf, threshold={"yes": 0.3}).predict_clip(x)
    high = StreamingDetector(clf, threshold={"yes": 0.95}).predict_clip(x)
    default = StreamingDetector(clf).predict_clip(x)
    assert [e.label for e in low] == [e.label for e in high] == ["yes", "no"]
    assert low[0].time < high[0].time  # a higher bar is reached later in the word
    assert low[0].score >= 0.3 and high[0].score >= 0.95
    assert low[1] == high[1] == default[1]  # "no" keeps the default threshold
    with pytest.raises(ValueError, match="--keyword-thresholds cat"):
        StreamingDetector(clf, threshold={"cat": 0.5})


def test_predict_clip_reads_files_at_any_rate(clf, tmp_path):
    import soxr

    x = planted(2.0, ("yes", 1.0), 3.0)
    path = tmp_path / "clip.flac"
    sf.write(path, soxr.resample(x, SR, 44_100), 44_100)
    events = StreamingDetector(clf).predict_clip(path)
    assert [e.label for e in events] == ["yes"]


# -- VAD gate ----------------------------------------------------------------------------------------------------


def test_silero_vad_hears_the_vowel_not_the_tone():
    vad = SileroVAD()
    assert vad.push(planted(1.0, ("yes", 1.0), 1.0)).max() < 0.5
    vad.reset()
    probs = vad.push(np.concatenate([silence(1.0), vowel(), silence(1.0)]))
    assert probs.max() > 0.5
    assert len(probs) == (2 * SR + len(vowel())) // 512


def test_vad_gate_skips_silence_and_still_detects(clf):
    detector = StreamingDetector(clf, vad=True)
    assert detector.predict_clip(silence(10.0)) == []
    assert detector.skipped_windows > 0
    assert detector.scored_windows == 0

    x = np.concatenate([silence(6.0), spoken_yes(), silence(6.0)])
    events = detector.predict_clip(x, padding_seconds=0.0)
    assert [e.label for e in events] == ["yes"]
    hops = len(x) // 1600 - 10 + 1  # windows end at 1.0, 1.1, ... s
    assert 0 < detector.scored_windows < 40  # only windows holding the vowel; the other ~90 are skipped
    assert detector.skipped_windows + detector.scored_windows == hops


# -- falling behind ----------------------------------------------------------------------------------------------


def test_live_mode_drops_a_backlog_and_reports_it(clf, caplog):
    detector = StreamingDetector(clf, max_backlog_seconds=0.5)
    with caplog.at_level(logging.WARNING, logger="kwslib.streaming"):
        detector.push(silence(1.0))  # hop at 1.0 s: one window
        assert detector.dropped_windows == 0
        detector.push(silence(6.0))  # a stalled microphone delivers 6 s at once: 60 hops, room for 5
    assert detector.dropped_windows == 55
    assert detector.scored_windows == 1 + 5
    assert "dropped 55 windows" in caplog.text
    assert detector._batch.shape[0] == 16  # buffers did not grow
    assert [e.label for e in detector.push(tone_of("yes")) + detector.push(silence(0.5))] == ["yes"]


def test_offline_mode_never_drops(clf):
    detector = StreamingDetector(clf)
    detector.push(silence(6.0))
    detector.flush()
    assert detector.dropped_windows == 0
    assert detector.scored_windows == 51


# -- thresholds sweep and evaluation ----------------------------------------------------------------------------


def test_sweep_from_recorded_posteriors_equals_running_the_detector(clf):
    rng = np.random.default_rng(3)
    x = planted(1.5, ("yes", 1.0), 1.2, ("no", 0.7), 3.0, ("yes", 2.0), 0.4, ("no", 1.0), 2.0, ("up", 1.0), 2.0)
    x[-3 * SR :] += (0.05 * rng.standard_normal(3 * SR)).astype(np.float32)
    recorder = StreamingDetector(clf, record=True, refractory=0.8)
    recorder.predict_clip(x)
    ends, smoothed = recorder.posteriors()
    keyword = np.array([label not in ("_silence_", "_unknown_") for label in clf.labels])
    compared = 0
    for threshold in (0.2, 0.35, 0.5, 0.7, 0.9, 0.99):
        vector = np.where(keyword, threshold, np.inf)
        swept = trigger_events(clf.labels, ends, smoothed, vector, recorder.trigger.refractory_samples, SR)
        direct = StreamingDetector(clf, threshold=threshold, refractory=0.8).predict_clip(x)
        assert swept == direct, threshold
        compared += len(direct)
    assert compared > 6


def test_match_detections_counts_hits_misses_and_false_accepts():
    words = [Word(2.0, 2.6, "yes"), Word(6.0, 6.5, "no"), Word(9.0, 9.4, "_unknown_", "bed"), Word(12.0, 12.5, "yes")]
    detections = [
        Detection(2.4, "yes", 0.9),  # hit, latency -0.2
        Detection(2.9, "yes", 0.8),  # second fire on the same word: false accept
        Detection(6.9, "no", 0.7),  # hit within tolerance, latency +0.4
        Detection(9.3, "yes", 0.6),  # during a non-keyword: false accept
        Detection(14.0, "yes", 0.9),  # 1.5 s after the word ended: false accept (and the word is missed)
    ]
    m = match_detections(detections, words, ["yes", "no", "up"], tolerance=1.0)
    assert (m["keywords"], m["hits"], m["misses"], m["false_accepts"]) == (3, 2, 1, 3)
    assert m["latencies"] == pytest.approx([-0.2, 0.4])
    assert m["per_keyword"]["yes"] == {"words": 2, "hits": 1, "misses": 1, "miss_rate": 0.5, "false_accepts": 3}
    assert m["per_keyword"]["up"]["miss_rate"] is None


def test_wrong_label_is_a_false_accept_and_a_miss():
    m = match_detections([Detection(2.5, "no", 0.9)], [Word(2.0, 2.6, "yes")], ["yes", "no"], tolerance=1.0)
    assert (m["hits"], m["misses"], m["false_accepts"]) == (0, 1, 1)


def write_stream(tmp_path, samples: np.ndarray, rows: str):
    wav, csv_path = tmp_path / "stream.wav", tmp_path / "stream.csv"
    sf.write(wav, samples, SR, subtype="PCM_16")
    csv_path.write_text(rows)
    return wav, csv_path


def test_evaluate_stream_on_a_hand_made_wav_and_csv(clf, trained_model, tmp_path):
    # yes at 2-3 s, no at 5.5-6.5 s, yes at 9-10 s; the CSV calls the last one "up" (wrong label -> a false accept
    # and a missed "up") and lists an "_unknown_" word at 13 s that never fires.
    x = planted(2.0, ("yes", 1.0), 2.5, ("no", 1.0), 2.5, ("yes", 1.0), 5.0)
    wav, csv_path = write_stream(tmp_path, x, "time,label\n2.0,yes\n5.5,no\n9.0,up\n13.0,_unknown_\n")
    out = tmp_path / "out"
    cfg = StreamConfig(model=str(trained_model / "model"), wav=str(wav), csv=str(csv_path), out=str(out))
    result = evaluate_stream(cfg, classifier=clf, progress=False)
    d = result.stream["default"]
    assert [e.label for e in result.detections] == ["yes", "no", "yes"]
    assert (d["keywords"], d["hits"], d["misses"], d["false_accepts"], d["non_keywords"]) == (3, 2, 1, 1, 1)
    assert d["miss_rate"] == pytest.approx(1 / 3)
    assert d["false_accepts_per_hour"] == pytest.approx(1 / (15.0 / 3600))
    assert d["hours"] == pytest.approx(15.0 / 3600)
    assert d["latency_ms_median"] is not None and d["latency_ms_median"] <= 300

    metrics = load_metrics(out / "metrics.json")  # minimal metrics.json, valid against the schema
    assert metrics["labels"] == clf.labels
    assert metrics["stream"]["default"] == d
    sweep = metrics["stream"]["sweep"]
    assert [p["threshold"] for p in sweep][:3] == [0.3, 0.31, 0.32]
    assert all(p["false_accepts_per_hour"] >= 0 and 0 <= p["miss_rate"] <= 1 for p in sweep)
    at_half = next(p for p in sweep if p["threshold"] == 0.5)
    assert (at_half["hits"], at_half["false_accepts"]) == (2, 1)  # the sweep's 0.5 is the detector's 0.5
    target = metrics["stream"]["target"]
    assert target["threshold"] is None  # the mislabelled word fires at every threshold: never <= 0.5 FA/h


def test_evaluate_stream_merges_into_an_existing_metrics_json(clf, trained_model, tmp_path):
    x = planted(2.0, ("yes", 1.0), 4.0)
    wav, csv_path = write_stream(tmp_path, x, "time,end,label\n2.0,3.0,yes\n")
    out = tmp_path / "run"
    out.mkdir()
    existing = {"schema": "kws.metrics/2", "labels": clf.labels, "model": "compact", "best_epoch": 3}
    (out / "metrics.json").write_text(json.dumps(existing))
    cfg = StreamConfig(model=str(trained_model / "model"), wav=str(wav), csv=str(csv_path), out=str(out))
    evaluate_stream(cfg, classifier=clf, progress=False)
    metrics = load_metrics(out)
    assert metrics["best_epoch"] == 3 and metrics["model"] == "compact"
    assert metrics["stream"]["default"]["hits"] == 1
    assert metrics["stream"]["target"]["threshold"] == 0.3  # no false accepts anywhere: the lowest swept threshold

    (out / "metrics.json").write_text(json.dumps({**existing, "labels": ["a", "b"]}))
    with pytest.raises(ValueError, match="pick another --out"):
        evaluate_stream(cfg, classifier=clf, progress=False)


def test_generated_stream_is_seeded_and_its_saved_copy_scores_the_same(clf, trained_model, tmp_path):
    data = trained_model.parent / "sc"
    common = dict(model=str(trained_model / "model"), data=str(data), minutes=1.0, unknown_share=0.3)
    cfg = StreamConfig(**common, out=str(tmp_path / "a"), save_stream=True, seed=5)
    first = evaluate_stream(cfg, classifier=clf, progress=False)
    again = evaluate_stream(StreamConfig(**common, out=str(tmp_path / "b"), seed=5), classifier=clf, progress=False)
    assert first.words == again.words
    assert first.detections == again.detections

    words = first.words
    assert 6 <= len(words) <= 15  # one word every 4-10 s over a minute
    assert {w.label for w in words} <= {"yes", "no", "up", "_unknown_"}
    assert any(w.label == "_unknown_" for w in words) and any(w.label != "_unknown_" for w in words)
    assert {w.word for w in words if w.label == "_unknown_"} <= {"bed", "cat"}
    assert all(b.start - a.start >= 4.0 - 1e-9 and a.end < b.start for a, b in zip(words, words[1:]))
    assert all(w.end - w.start <= 1.0 + 1e-9 for w in words)
    d = first.stream["default"]
    assert d["hits"] + d["misses"] == d["keywords"] == sum(w.label != "_unknown_" for w in words)
    assert d["hits"] + d["false_accepts"] == len(first.detections)
    assert sum(k["hits"] for k in first.stream["per_keyword"].values()) == d["hits"]

    saved = read_ground_truth(first.csv_path)
    assert [(w.label, w.word) for w in saved] == [(w.label, w.word) for w in words]
    assert [w.start for w in saved] == pytest.approx([w.start for w in words], abs=1e-4)
    replay = StreamConfig(model=cfg.model, wav=str(first.wav_path), csv=str(first.csv_path), out=str(tmp_path / "c"))
    replayed = evaluate_stream(replay, classifier=clf, progress=False)
    # The WAV is 16-bit and padded at the end, so scores move a little, not the counts.
    assert replayed.stream["default"]["hits"] == d["hits"]
    assert replayed.stream["default"]["keywords"] == d["keywords"]


# -- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hop": 2.0}, "--hop 2.0 is longer than --window 1.0"),
        ({"hop": 0.0}, "--hop 0.0 must be greater than 0"),
        ({"smoothing": 0}, "--smoothing 0"),
        ({"threshold": 1.5}, "--threshold 1.5"),
        ({"refractory": -1.0}, "--refractory -1.0"),
        ({"batch_size": 0}, "--batch-size 0"),
        ({"max_backlog_seconds": 0.0}, "--max-backlog-seconds 0.0"),
    ],
)
def test_detector_rejects_bad_settings(clf, kwargs, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        StreamingDetector(clf, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hop": 2.0, "window": 1.0}, "--hop 2.0 is longer than --window 1.0"),
        ({"threshold": 0.0}, "--threshold 0.0"),
        ({"keyword_thresholds": ["yes"]}, "--keyword-thresholds 'yes' must look like yes=0.8"),
        ({"keyword_thresholds": ["yes=2"]}, "--keyword-thresholds 'yes=2'"),
        ({"wav": "a.wav"}, "--wav and --csv go together"),
        ({"min_snr_db": 30.0}, "--min-snr-db 30.0 is above --max-snr-db 20.0"),
        ({"min_spacing": 0.5}, "--min-spacing 0.5 is shorter than a 1 s word"),
    ],
)
def test_stream_config_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        StreamConfig(**kwargs)


def test_push_rejects_non_audio(clf):
    detector = StreamingDetector(clf)
    with pytest.raises(ValueError, match="push mono samples"):
        detector.push(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(TypeError, match="float samples"):
        detector.push(np.zeros(100, dtype=np.int16))


def test_ground_truth_csv_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("start,word\n1.0,yes\n")
    with pytest.raises(ValueError, match="needs time and label"):
        read_ground_truth(bad)
    bad.write_text("time,label\nsoon,yes\n")
    with pytest.raises(ValueError, match="line 2"):
        read_ground_truth(bad)
    with pytest.raises(ValueError, match="no such file"):
        read_ground_truth(tmp_path / "missing.csv")


# -- command line ------------------------------------------------------------------------------------------------


def test_cli_stream_file_prints_json_lines(trained_model, tmp_path, capsys):
    wav = tmp_path / "long.wav"
    sf.write(wav, planted(2.0, ("yes", 1.0), 2.5, ("no", 1.0), 3.0), SR, subtype="PCM_16")
    assert main(["stream", "--model", str(trained_model / "model"), "--file", str(wav), "--json"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [(d["label"], set(d)) for d in lines] == [
        ("yes", {"time", "label", "score"}),
        ("no", {"time", "label", "score"}),
    ]
    assert 2.0 < lines[0]["time"] < 3.5 and 5.5 < lines[1]["time"] < 7.0
    assert "2 detections" in captured.err


def test_cli_stream_eval(trained_model, tmp_path, capsys):
    wav, csv_path = write_stream(tmp_path, planted(2.0, ("yes", 1.0), 4.0), "time,label\n2.0,yes\n")
    argv = ["stream-eval", "--model", str(trained_model / "model"), "--wav", str(wav), "--csv", str(csv_path)]
    assert main([*argv, "--out", str(tmp_path / "out"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "miss rate 0.0% (0 of 1)" in out
    assert load_metrics(tmp_path / "out")["stream"]["default"]["hits"] == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--file", "{tmp}/missing.wav"], "missing.wav: no such file"),
        (["--file", "{tmp}/corrupt.wav"], "not a readable audio file"),
        (["--file", "{tmp}/ok.wav", "--threshold", "2"], "--threshold 2.0 must be in (0, 1]"),
        (["--file", "{tmp}/ok.wav", "--hop", "1.5"], "--hop 1.5 is longer than --window 1.0"),
        (["--file", "{tmp}/ok.wav", "--hop", "1.5", "--window", "1"], "--hop 1.5 is longer than --window 1.0"),
        (["--file", "{tmp}/ok.wav", "--keyword-thresholds", "zebra=0.5"], "zebra: not a keyword of this model"),
    ],
)
def test_cli_stream_bad_input_is_one_line(trained_model, tmp_path, capsys, extra, message):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    sf.write(tmp_path / "ok.wav", silence(2.0), SR)
    argv = ["stream", "--model", str(trained_model / "model"), *[a.format(tmp=tmp_path) for a in extra]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("kws: error: ") and message in err[-1]
    assert not any("Traceback" in line for line in err)


def test_cli_stream_without_a_microphone_library_says_how_to_install(trained_model, capsys):
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError):
        pass
    else:
        pytest.skip("sounddevice is installed: this checks the message shown when it is not")
    assert main(["stream", "--model", str(trained_model / "model")]) == 2
    err = capsys.readouterr().err
    assert "pip install sounddevice" in err and "libportaudio2" in err


# -- incremental scoring of embedding models ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedding_clf():
    """An embedding model (the real speech_embedding front end) with a random head whose logits are large enough
    to move the probabilities; what it detects does not matter, only that incremental and whole-window scoring agree."""
    import torch

    from kwslib.inference import TorchClassifier
    from kwslib.labels import label_set
    from kwslib.models import WaveformClassifier, build_model

    labels = label_set("sc12")
    torch.manual_seed(0)
    model, feature_extractor = build_model("embedding", labels)
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_(std=0.05 if p.ndim > 1 else 0.5)
    return TorchClassifier(WaveformClassifier.wrap(model, feature_extractor), list(labels.labels))


def noisy_words(seconds: float = 7.0) -> np.ndarray:
    """Tones over low noise (no digital silence, where the per-frame and per-clip mel floors differ)."""
    rng = np.random.default_rng(8)
    x = planted(2.2, ("yes", 1.0), 1.3, ("no", 0.8), seconds - 5.3)
    return x + (0.003 * rng.standard_normal(len(x))).astype(np.float32)


def test_incremental_windows_equal_the_model_on_their_samples(embedding_clf):
    from kwslib.streaming import IncrementalScorer

    detector = StreamingDetector(embedding_clf, smoothing=1, record=True)
    assert detector.incremental is not None and "incremental True" in repr(detector)
    assert detector.window_samples == 31_712  # the model's buffer: 16 embeddings
    x = noisy_words()
    detector.predict_clip(x, padding_seconds=0.0)
    ends, probs = detector.posteriors()
    assert ends[0] == 32_000 and detector.scored_windows == len(ends) == len(x) // 1600 - 20 + 1
    scorer = IncrementalScorer(embedding_clf)
    for end, row in zip(ends[::7], probs[::7]):
        last = (int(end) - 12_512) // 1280  # the newest embedding complete at `end`
        start = 1280 * (last - 15)
        whole = embedding_clf.probabilities(x[start : start + scorer.window_samples][None])[0]
        np.testing.assert_allclose(row, whole, atol=1e-4)


def test_incremental_events_do_not_depend_on_chunking(embedding_clf):
    x = noisy_words()
    detector = StreamingDetector(embedding_clf, threshold=0.3, record=True)
    runs = []
    for chunk in (160, 1280, 777, 16_000):
        events = run(detector, x, chunk)
        runs.append((events, detector.posteriors()[1]))
    for events, posteriors in runs[1:]:
        assert events == runs[0][0]
        np.testing.assert_array_equal(posteriors, runs[0][1])


def test_incremental_live_mode_and_vad_keep_the_embeddings_going(embedding_clf):
    x = noisy_words()
    offline = StreamingDetector(embedding_clf, smoothing=1, record=True)
    offline.predict_clip(x, padding_seconds=0.0)
    ends, probs = offline.posteriors()
    live = StreamingDetector(embedding_clf, smoothing=1, record=True, max_backlog_seconds=0.5)
    run(live, x[: 4 * SR], 1600)
    live.push(x[4 * SR :])  # 3 s at once: only the newest windows are scored, from continuous embeddings
    assert live.dropped_windows > 0
    live_ends, live_probs = live.posteriors()
    np.testing.assert_allclose(live_probs[-3:], probs[np.searchsorted(ends, live_ends[-3:])], atol=1e-4)


def test_incremental_is_automatic_for_embedding_checkpoints_only(clf, embedding_clf):
    assert StreamingDetector(clf).incremental is None
    assert StreamingDetector(embedding_clf, window=1.0).incremental is None  # a window was asked for
    assert StreamingDetector(embedding_clf, incremental=False).incremental is None
    with pytest.raises(ValueError, match="--incremental: only embedding models"):
        StreamingDetector(clf, incremental=True)
    with pytest.raises(ValueError, match="--window cannot be set with --incremental"):
        StreamingDetector(embedding_clf, incremental=True, window=1.0)
