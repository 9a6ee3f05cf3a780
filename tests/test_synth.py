"""kwslib.data.synth: real engines on tiny configs (one shared run), plus the pure parts on literal inputs."""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kwslib.config import SynthConfig
from kwslib.data import synth
from kwslib.labels import BACKGROUND_NOISE_DIR, SC35_WORDS

WORDS = ["yes", "seven", "turn on"]
EXTRA = ["yet", "cup", "town", "light", "goal"]  # a few of synth.EXTRA_WORDS, two per speaker
CLIP_RE = re.compile(r"^[a-z_]+/[0-9a-f]{8}_nohash_\d+\.wav$")
PEAK_LIMIT = 10 ** (-1 / 20)

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed: sudo apt-get install espeak-ng"
)


def _config(out: Path, **kw) -> SynthConfig:
    base = {
        "out": str(out),
        "words": WORDS,
        "extra_words": EXTRA,
        "extra_words_per_speaker": 2,
        "speakers": 12,
        "noise_seconds": 30.0,
        "seed": 0,
        "jobs": 2,
    }
    return SynthConfig(**{**base, **kw})


def _run(cfg: SynthConfig) -> synth.SynthSummary:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", synth.MissingEngineWarning)  # flite/festival may be absent elsewhere
        return synth.synthesize(cfg, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != synth.SYNTH_JSON
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, synth.SynthSummary]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed: sudo apt-get install espeak-ng")
    out = tmp_path_factory.mktemp("synth") / "data"
    return out, _run(_config(out))


def _path_env(monkeypatch, tmp_path: Path, keep: list[str]) -> None:
    """PATH holding only the `keep` engines, as on a machine where the others are not installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in keep:
        os.symlink(shutil.which(name), bin_dir / name)
    monkeypatch.setenv("PATH", str(bin_dir))


# ---------------------------------------------------------------------------------------------------------------
# A real run


@pytest.mark.slow
def test_layout_is_speech_commands(dataset):
    out, summary = dataset
    clips = [p.relative_to(out).as_posix() for p in out.rglob("*.wav") if p.parent.name != BACKGROUND_NOISE_DIR]
    assert clips and all(CLIP_RE.match(c) for c in clips), clips[:5]
    extra_said = sorted(
        {w for said in json.loads((out / "synth.json").read_text())["extra_words"]["by_speaker"].values() for w in said}
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["yes", "seven", "turn_on", *extra_said]
        + [BACKGROUND_NOISE_DIR, "validation_list.txt", "testing_list.txt", "synth.json"]
    )
    assert summary.clips_written == len(clips) == (3 + 2) * 12 - summary.dropped_silent - summary.dropped_too_long
    assert summary.extra_word_clips == sum(c.split("/")[0] in EXTRA for c in clips)
    assert summary.dropped_failed == 0


@pytest.mark.slow
def test_lists_reference_existing_disjoint_files(dataset):
    out, summary = dataset
    lists = {}
    for name in ("validation_list.txt", "testing_list.txt"):
        text = (out / name).read_text()
        assert text.endswith("\n") and "\\" not in text
        lines = text.splitlines()
        assert lines == sorted(lines) and len(lines) == len(set(lines))
        assert all((out / line).is_file() for line in lines)
        lists[name] = set(lines)
    assert lists["validation_list.txt"] and lists["testing_list.txt"]
    assert not lists["validation_list.txt"] & lists["testing_list.txt"]
    assert summary.clips_per_split == {
        "train": summary.clips_written - len(lists["validation_list.txt"]) - len(lists["testing_list.txt"]),
        "validation": len(lists["validation_list.txt"]),
        "test": len(lists["testing_list.txt"]),
    }


@pytest.mark.slow
def test_no_speaker_voice_or_voice_group_in_two_splits(dataset):
    out, _ = dataset
    meta = json.loads((out / "synth.json").read_text())
    assert meta["complete"] is True
    speakers = meta["speakers"]
    for key in ("voice", "voice_group"):
        split_of = {}
        for spk in speakers.values():
            name = spk["voice_group"] if key == "voice_group" else (spk["engine"], spk["voice"])
            assert split_of.setdefault(name, spk["split"]) == spk["split"], f"{name} is in two splits"
    # Every clip of a held-out speaker is listed, and only those.
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        listed = {line.split("/")[1][:8] for line in (out / name).read_text().splitlines()}
        assert listed == {sid for sid, s in speakers.items() if s["split"] == split}
    for sid, spk in speakers.items():
        assert sid == synth.speaker_id(spk["engine"], spk["voice"], spk["rate"], spk["pitch"])


@pytest.mark.slow
def test_every_clip_is_one_second_16k_pcm16_below_minus_1_dbfs(dataset):
    out, _ = dataset
    for path in out.glob("*/*_nohash_*.wav"):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 16000), path
        x, _ = sf.read(path, dtype="float32")
        assert np.abs(x).max() < PEAK_LIMIT, path
        rms_db = 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        assert -30 < rms_db < -15, (path, rms_db)
        assert np.abs(x[:160]).max() > 0  # the noise floor: padding is not digital zero


@pytest.mark.slow
def test_background_noises_are_long_and_below_minus_1_dbfs(dataset):
    out, summary = dataset
    noise_dir = out / BACKGROUND_NOISE_DIR
    names = sorted(p.stem for p in noise_dir.glob("*.wav"))
    assert names == sorted(synth.NOISES)
    for path in noise_dir.glob("*.wav"):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 30 * 16000), path
        x, _ = sf.read(path, dtype="float32")
        assert np.abs(x).max() < PEAK_LIMIT and np.sqrt(np.mean(x**2)) > 0.01, path
    assert {"transients", "tones_and_chirps", "music"} <= set(names)
    assert sorted(summary.noise_files) == sorted(f"{BACKGROUND_NOISE_DIR}/{n}.wav" for n in synth.NOISES)


@pytest.mark.slow
def test_same_seed_is_byte_identical_whatever_jobs(dataset, tmp_path):
    out, _ = dataset
    again = tmp_path / "again"
    _run(_config(again, jobs=1))
    assert _files(again) == _files(out)


@pytest.mark.slow
def test_overwrite_replaces_our_dataset_and_another_seed_differs(dataset, tmp_path):
    out, _ = dataset
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "stale_word").mkdir()
    _run(_config(copy, seed=1, overwrite=True, words=["yes"]))
    assert not (copy / "stale_word").exists() and not (copy / "seven").exists()
    new, old = _files(copy), _files(out)
    assert new.keys() != old.keys() or any(new[k] != old[k] for k in new)
    for name in ("white_noise", *synth.NON_STATIONARY):
        assert (copy / f"_background_noise_/{name}.wav").read_bytes() != old[f"_background_noise_/{name}.wav"], name


@pytest.mark.slow
def test_every_speaker_says_its_extra_words_in_its_own_split(dataset):
    out, summary = dataset
    meta = json.loads((out / "synth.json").read_text())
    extra = meta["extra_words"]
    assert extra["pool"] == EXTRA and extra["per_speaker"] == 2
    assert set(extra["by_speaker"]) == set(meta["speakers"])
    lists = {split: set((out / name).read_text().splitlines()) for split, name in synth_lists()}
    dropped = {(d["speaker"], d["word"]) for d in meta["drops"]}
    written = 0
    for sid, said in extra["by_speaker"].items():
        assert len(said) == len(set(said)) == 2 and set(said) <= set(EXTRA)
        assert said == synth.plan_extra_words(EXTRA, [sid], 2, seed=0)[sid]
        split = meta["speakers"][sid]["split"]
        for word in said:
            rel = f"{word}/{sid}_nohash_0.wav"
            if (sid, word) in dropped:
                continue
            written += 1
            assert (out / rel).is_file()
            assert {s for s, listed in lists.items() if rel in listed} == ({split} - {"train"})
            assert meta["words"][word] == word
    assert written == summary.extra_word_clips > 0
    # Nobody said an extra word they did not draw, and the draws differ between speakers.
    for word in EXTRA:
        for path in (out / word).glob("*.wav") if (out / word).is_dir() else ():
            assert word in extra["by_speaker"][path.name[:8]]
    assert len({tuple(said) for said in extra["by_speaker"].values()}) > 1


def synth_lists() -> list[tuple[str, str]]:
    return [("validation", "validation_list.txt"), ("test", "testing_list.txt")]


@pytest.mark.slow
def test_extra_words_are_unknown_in_sc12_and_custom_and_dropped_by_sc35(dataset, capsys):
    from kwslib.cli import main
    from kwslib.config import DataConfig
    from kwslib.data import load_data
    from kwslib.labels import UNKNOWN

    out, _ = dataset

    def labelled(ds) -> list[tuple[str, str]]:
        return [
            (word, split.features["label"].int2str(label))
            for split in ds.values()
            for word, label in zip(split["word"], split["label"], strict=True)
        ]

    # A large unknown share, so the seeded sample of the non-keywords surely holds extra words.
    for cfg in (
        DataConfig(source=str(out), protocol="sc12", unknown_percentage=100.0),
        DataConfig(source=str(out), protocol="custom", words=["yes", "seven"], unknown_percentage=100.0),
    ):
        extra_labels = [label for word, label in labelled(load_data(cfg)) if word in EXTRA]
        assert extra_labels and set(extra_labels) == {UNKNOWN}, cfg.protocol
    sc35_words = {word for word, _ in labelled(load_data(DataConfig(source=str(out), protocol="sc35")))}
    assert "seven" in sc35_words and not sc35_words & set(EXTRA)  # sc35 has no _unknown_: dropped, no error
    assert main(["data-info", str(out), "--protocol", "sc12", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["splits"]["train"]["per_label"][UNKNOWN] > 0


@needs_espeak
def test_missing_engine_is_skipped_with_a_warning(monkeypatch, tmp_path):
    _path_env(monkeypatch, tmp_path, ["espeak-ng"])
    assert synth.available_engines() == {"espeak-ng": None, "flite": "flite", "festival": "festival"}
    with pytest.warns(synth.MissingEngineWarning) as caught:
        summary = synth.synthesize(_config(tmp_path / "out", words=["yes"], speakers=4, jobs=1), progress=False)
    messages = sorted(str(w.message) for w in caught)
    assert messages == [
        "TTS engine festival skipped: festival is not installed; install it: sudo apt-get install festival",
        "TTS engine flite skipped: flite is not installed; install it: sudo apt-get install flite",
    ]
    assert summary.engines_used == {"espeak-ng": 4}
    assert set(summary.engines_skipped) == {"flite", "festival"}
    assert "apt-get install festival" in summary.engines_skipped["festival"]


def test_no_engine_at_all_is_a_clear_error(monkeypatch, tmp_path):
    _path_env(monkeypatch, tmp_path, [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", synth.MissingEngineWarning)
        with pytest.raises(ValueError, match="no TTS engine found; install one: sudo apt-get install espeak-ng"):
            synth.synthesize(_config(tmp_path / "out"), progress=False)
    assert not (tmp_path / "out").exists()


def test_unknown_engine_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="--engines polly: unknown engine; use any of espeak-ng,flite,festival"):
        synth.synthesize(_config(tmp_path / "out", engines=["espeak-ng", "polly"]), progress=False)


def test_non_empty_out_needs_overwrite(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not empty; pass --overwrite"):
        synth.synthesize(_config(tmp_path), progress=False)
    # --overwrite never empties a folder that synth did not make.
    with pytest.raises(ValueError, match="no synth.json"):
        synth.synthesize(_config(tmp_path, overwrite=True), progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_bad_words_and_short_noise_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="--words '_unknown_' cannot be a folder name"):
        synth.synthesize(_config(tmp_path / "a", words=["_unknown_"]), progress=False)
    with pytest.raises(ValueError, match=r"--words repeat \['turn_on'\]"):
        synth.synthesize(_config(tmp_path / "a", words=["turn on", "Turn  On"]), progress=False)
    with pytest.raises(ValueError, match="--noise-seconds 5.0 is too short"):
        synth.synthesize(_config(tmp_path / "a", noise_seconds=5.0), progress=False)


# ---------------------------------------------------------------------------------------------------------------
# Pure parts


def _tone(seconds: float, sr: int = 22050, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_render_clip_fits_centres_and_limits_a_word():
    raw = np.concatenate([np.zeros(5000, np.float32), _tone(0.4, level=0.9), np.zeros(9000, np.float32)])
    clip, status = synth.render_clip(raw, 22050, 0.0, 16000, np.random.default_rng(0))
    assert status == "ok" and clip.shape == (16000,) and clip.dtype == np.float32
    assert np.abs(clip).max() < 10 ** (-1.5 / 20) + 0.01
    loud = np.flatnonzero(np.abs(clip) > 0.01)
    middle = (loud[0] + loud[-1]) / 2
    assert abs(middle - 8000) <= 0.05 * 16000 + 200  # centred, give or take the ±50 ms jitter and edges
    assert 0.39 < (loud[-1] - loud[0]) / 16000 < 0.43  # trimmed to the tone (plus 10 ms edges)


def test_render_clip_pitch_shift_shortens_and_raises():
    clip, _ = synth.render_clip(_tone(0.5), 22050, 12.0, 16000, np.random.default_rng(0))
    loud = np.flatnonzero(np.abs(clip) > 0.01)
    assert 0.24 < (loud[-1] - loud[0]) / 16000 < 0.28  # an octave up plays twice as fast
    spectrum = np.abs(np.fft.rfft(clip))
    assert abs(np.argmax(spectrum) * 16000 / len(clip) - 440) < 3


def test_render_clip_drops_silence_and_compresses_or_drops_long_speech():
    rng = np.random.default_rng(0)
    assert synth.render_clip(np.zeros(22050, np.float32), 22050, 0.0, 16000, rng) == (None, "silent")
    assert synth.render_clip(_tone(1.6), 22050, 0.0, 16000, rng) == (None, "too_long")
    clip, status = synth.render_clip(_tone(1.0), 22050, 0.0, 16000, rng)
    assert status == "compressed" and clip.shape == (16000,)
    assert np.abs(clip[:100]).max() < 0.01 and np.abs(clip[-100:]).max() < 0.01  # fully inside the clip


def test_speaker_id_is_sha1_prefix():
    assert synth.speaker_id("flite", "slt", 1.0, 0.0) == "50a90ec3"
    assert synth.Speaker("flite", "slt", 1.0, 0.0).id == "50a90ec3"
    assert synth.folder_name("Turn  On") == "turn_on"


def test_apportion_keeps_the_total():
    assert synth._apportion(150, {"espeak-ng": 0.7, "flite": 0.15, "festival": 0.15}) == {
        "espeak-ng": 105,
        "flite": 23,
        "festival": 22,
    }
    assert synth._apportion(10, {"flite": 0.15, "festival": 0.15}) == {"flite": 5, "festival": 5}


def test_default_plan_holds_out_whole_voices_of_every_engine():
    voices = {
        "espeak-ng": [f"{a}+v{i}" for a in synth.ESPEAK_ACCENTS for i in range(90)],
        "flite": list(synth.FLITE_VOICES),
        "festival": list(synth.FESTIVAL_VOICES),
    }
    speakers = synth.assign_splits(synth.plan_speakers(150, voices, 0), 0.1, 0.1, 0)
    assert len(speakers) == len({s.id for s in speakers}) == 150
    for engine in voices:
        assert {s.split for s in speakers if s.engine == engine} == {"train", "validation", "test"}, engine
    groups = {}
    for s in speakers:
        assert groups.setdefault(synth.voice_group(s.engine, s.voice), s.split) == s.split
    # kal16 (flite) and kal_diphone (festival) are one recorded person, so they share a split.
    split = {(s.engine, s.voice): s.split for s in speakers}
    assert split["flite", "kal16"] == split["festival", "kal_diphone"]
    assert split["flite", "slt"] == split["festival", "cmu_us_slt_arctic_hts"]


def test_babble_sentences_avoid_every_keyword_and_extra_word():
    words = {w.strip(".,").lower() for s in synth.BABBLE_SENTENCES for w in s.split()}
    assert not words & set(SC35_WORDS)
    assert not words & {"to", "too", "for", "know", "won", "ate"}
    assert not words & set(synth.EXTRA_WORDS)
    assert synth.babble_sentences([*SC35_WORDS, *synth.EXTRA_WORDS]) == synth.BABBLE_SENTENCES


def test_babble_drops_sentences_that_say_a_spoken_word_or_phrase():
    kept = synth.babble_sentences(["garden", "the sea", "sea castle"])
    assert len(kept) == len(synth.BABBLE_SENTENCES) - 2
    assert not any("garden" in s or "the sea" in s for s in kept)
    assert synth.babble_sentences(["the"]) == tuple(s for s in synth.BABBLE_SENTENCES if "the " not in s.lower())


# ---------------------------------------------------------------------------------------------------------------
# Non-stationary background noise


def _noise(tmp_path: Path, name: str, seed: int, seconds: float = 30.0) -> bytes:
    (tmp_path / BACKGROUND_NOISE_DIR).mkdir(exist_ok=True)
    rel = synth._render_noise(name, int(seconds * 16000), seed, str(tmp_path), [], (), str(tmp_path))
    return (tmp_path / rel).read_bytes()


def _frame_db(x: np.ndarray, seconds: float = 0.05) -> np.ndarray:
    hop = int(seconds * 16000)
    frames = x[: len(x) // hop * hop].astype(np.float64).reshape(-1, hop)
    return 10 * np.log10(np.mean(frames**2, axis=1))


@pytest.mark.parametrize("name", ["transients", "tones_and_chirps", "music"])
def test_non_stationary_noise_is_seeded_eventful_and_not_clipping(tmp_path, name):
    data = _noise(tmp_path, name, seed=0)
    assert _noise(tmp_path, name, seed=0) == data  # byte-identical for a seed
    assert _noise(tmp_path, name, seed=1) != data
    x, rate = sf.read(tmp_path / BACKGROUND_NOISE_DIR / f"{name}.wav", dtype="float32")
    assert (rate, len(x)) == (16000, 30 * 16000)
    assert np.abs(x).max() < PEAK_LIMIT
    assert np.abs(x).max() > 10 ** (-3 / 20)  # levelled by its loudest event, not left quiet
    frame_db = _frame_db(x)
    assert frame_db.max() - frame_db.min() > 20.0  # non-stationary: events over a quiet floor
    assert np.percentile(frame_db, 1) < synth.NOISE_FLOOR_DBFS + 10  # the floor is heard between events
    # Crops become `_silence_` examples: most must hold an event, i.e. a peak far above the floor
    # (the -70 dBFS floor peaks near -57 dBFS within a second).
    starts = np.random.default_rng(0).integers(0, len(x) - 16000, 300)
    eventful = np.mean([np.abs(x[s : s + 16000]).max() > 10 ** (-50 / 20) for s in starts])
    assert eventful >= 0.9, eventful


def test_white_noise_is_stationary_for_comparison(tmp_path):
    _noise(tmp_path, "white_noise", seed=0)
    x, _ = sf.read(tmp_path / BACKGROUND_NOISE_DIR / "white_noise.wav", dtype="float32")
    frame_db = _frame_db(x)
    assert frame_db.max() - frame_db.min() < 3.0


def test_transients_vary_in_level_by_about_40_db(tmp_path):
    _noise(tmp_path, "transients", seed=0, seconds=60.0)
    x, _ = sf.read(tmp_path / BACKGROUND_NOISE_DIR / "transients.wav", dtype="float64")
    peaks = np.abs(x[: len(x) // 160 * 160]).reshape(-1, 160).max(axis=1)  # 10 ms frames
    event_peaks = 20 * np.log10(peaks[peaks > 10 ** (-55 / 20)])
    assert event_peaks.max() - np.percentile(event_peaks, 5) > 25.0


# ---------------------------------------------------------------------------------------------------------------
# Extra non-keyword words


def test_extra_words_are_common_words_that_are_not_speech_commands_words():
    extra = synth.EXTRA_WORDS
    assert 50 <= len(extra) <= 70 and len(set(extra)) == len(extra)
    assert not set(extra) & set(SC35_WORDS) and not set(extra) & synth.HOMOPHONES
    assert all(re.fullmatch(r"[a-z]+", w) for w in extra)
    # Near misses of every sc12 keyword are there.
    for near in ("yet", "note", "cup", "town", "lift", "light", "own", "often", "stock", "goal"):
        assert near in extra


@needs_espeak
def test_no_extra_word_sounds_like_a_speech_commands_word():
    """Homophones would be label noise: the same sound as a keyword and as `_unknown_`."""

    def phonemes(words) -> list[str]:
        text = "".join(f"{w}.\n" for w in words)
        out = synth._run(["espeak-ng", "-v", "en-us", "-q", "-x", "--stdin"], input=text, text=True).stdout
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        assert len(lines) == len(words)
        return lines

    sc = dict(zip(phonemes(SC35_WORDS), SC35_WORDS, strict=True))
    assert phonemes(["know"])[0] in sc  # the check itself works
    clashes = {w: sc[p] for w, p in zip(synth.EXTRA_WORDS, phonemes(synth.EXTRA_WORDS), strict=True) if p in sc}
    assert clashes == {}


def test_extra_words_default_with_the_default_words_only_and_can_be_disabled():
    sc35 = list(SC35_WORDS)
    assert synth._extra_words(SynthConfig(), sc35) == list(synth.EXTRA_WORDS)
    assert synth._extra_words(SynthConfig(words=["yes"]), ["yes"]) == []  # own words: no default neighbours
    assert synth._extra_words(SynthConfig(words=["yes"], extra_words=["Yet", "cup "]), ["yes"]) == ["yet", "cup"]
    for off in (SynthConfig(extra_words=["none"]), SynthConfig(extra_words=[]), SynthConfig(extra_words_per_speaker=0)):
        assert synth._extra_words(off, sc35) == []
    assert synth.plan_extra_words([], ["a", "b"], 6, seed=0) == {"a": [], "b": []}


def test_extra_words_cli_spelling():
    from kwslib.cli import build_parser
    from kwslib.config import from_namespace

    def cfg(*flags: str) -> SynthConfig:
        return from_namespace(SynthConfig, build_parser().parse_args(["synth", *flags]))

    assert (cfg().extra_words, cfg().extra_words_per_speaker) == (None, 6)
    assert cfg("--extra-words", "none").extra_words == []
    assert cfg("--extra-words", "NONE").extra_words == []
    picked = cfg("--extra-words", "yet, cup", "--extra-words-per-speaker", "1")
    assert (picked.extra_words, picked.extra_words_per_speaker) == (["yet", "cup"], 1)


def test_bad_extra_words_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="--extra-words-per-speaker -1 must be 0"):
        SynthConfig(extra_words_per_speaker=-1)
    with pytest.raises(ValueError, match=r"--extra-words \['yes'\] are also in --words"):
        synth.synthesize(_config(tmp_path / "a", extra_words=["Yes", "yet"]), progress=False)
    with pytest.raises(ValueError, match=r"--extra-words repeat \['yet'\]"):
        synth.synthesize(_config(tmp_path / "a", extra_words=["yet", "YET"]), progress=False)
    with pytest.raises(ValueError, match="--extra-words '_x' cannot be a folder name"):
        synth.synthesize(_config(tmp_path / "a", extra_words=["_x"]), progress=False)
    assert not (tmp_path / "a").exists()


def test_plan_extra_words_is_seeded_per_speaker():
    pool = list(synth.EXTRA_WORDS)
    ids = [f"{i:08x}" for i in range(40)]
    plan = synth.plan_extra_words(pool, ids, 6, seed=0)
    assert all(len(plan[i]) == len(set(plan[i])) == 6 and set(plan[i]) <= set(pool) for i in ids)
    assert synth.plan_extra_words(pool, ids[::-1], 6, seed=0) == plan  # not by order of the speakers
    assert synth.plan_extra_words(pool, ids[:1], 6, seed=0) == {ids[0]: plan[ids[0]]}
    assert synth.plan_extra_words(pool, ids, 6, seed=1) != plan
    assert len({w for said in plan.values() for w in said}) > len(pool) // 2  # the pool gets used
    assert synth.plan_extra_words(["yet", "cup"], ids[:2], 6, seed=0) == {i: ["yet", "cup"] for i in ids[:2]}


def test_festival_script_escapes_quotes(tmp_path):
    script = synth.festival_script("kal_diphone", 1.0, [('say "hi" \\ now', tmp_path / "a.wav")])
    assert '(Utterance Text "say \\"hi\\" \\\\ now")' in script
    if shutil.which("festival") is None:
        pytest.skip("festival is not installed: sudo apt-get install festival festvox-kallpc16k")
    raws, error = synth.synthesize_raw(synth.Speaker("festival", "kal_diphone", 1.0, 0.0), ['say "hi"'], tmp_path)
    assert error is None and raws[0] is not None
    samples, rate = raws[0]
    assert len(samples) / rate > 0.3


@needs_espeak
def test_espeak_batch_cuts_one_clip_per_word_and_echo_voices_fall_back(tmp_path):
    words = ["yes", "backward", "turn on", "six"]
    plain = synth.Speaker("espeak-ng", "en-us+m3", 1.0, 0.0)
    batch = synth._espeak_batch(plain, words, tmp_path / "a")
    assert batch is not None and len(batch) == len(words)
    for word, (samples, rate) in zip(words, batch, strict=True):
        (alone,), _ = synth.synthesize_raw(plain, [word], tmp_path / word)  # one text: one process
        lengths = [len(synth.trim_silence(x, r)) / r for x, r in ((samples, rate), alone)]
        assert abs(lengths[0] - lengths[1]) < 0.02, (word, lengths)
    # Echo variants never fall silent between words, so the cut fails and each word gets its own process.
    echo = synth.Speaker("espeak-ng", "en-us+RicishayMax", 1.0, 0.0)
    assert synth._espeak_batch(echo, words, tmp_path / "b") is None
    raws, error = synth.synthesize_raw(echo, words, tmp_path / "c")
    assert error is None and all(r is not None for r in raws)
