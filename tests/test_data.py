import math
import random

import numpy as np
import pytest
from conftest import SR, tone, write_sc_folder
from datasets import Audio, ClassLabel, Features, Value

from kwslib.audio import load_audio, wav_bytes
from kwslib.config import DataConfig
from kwslib.data import DataSourceError, labels_of, load_data, speaker_of, which_set
from kwslib.data.dataset import silence_crops, summarize, table_with_audio
from kwslib.data.speech_commands import HUB_LABELS_V2, load_hub_speech_commands
from kwslib.labels import SILENCE, UNKNOWN


def words_of(ds):
    return list(ds["word"])


# --- split rules -------------------------------------------------------------------------------------------------


def test_hash_rule_keeps_a_speaker_in_one_split_and_hits_the_shares():
    rng = random.Random(0)
    names = [f"{rng.getrandbits(32):08x}" for _ in range(20000)]
    sets = [which_set(f"yes/{n}_nohash_0.wav", 10, 10) for n in names]
    for n, s in zip(names[:500], sets[:500]):
        assert which_set(f"no/{n}_nohash_7.wav", 10, 10) == s  # another word, another take: same split
    shares = {s: sets.count(s) / len(sets) for s in ("train", "validation", "test")}
    assert shares["validation"] == pytest.approx(0.10, abs=0.01)
    assert shares["test"] == pytest.approx(0.10, abs=0.01)
    assert which_set("a/x_nohash_0.wav", 0, 0) == "train"
    assert which_set("a/x_nohash_0.wav", 100, 0) == "validation"


def test_speaker_of_file_names():
    assert speaker_of("yes/0a7c2a8d_nohash_1.wav") == "0a7c2a8d"
    assert speaker_of("hello/my_take.wav") == "my_take"


# --- local Speech Commands folder ------------------------------------------------------------------------------


def test_local_folder_with_lists_sc12(sc_folder):
    ds = load_data(DataConfig(source=str(sc_folder), protocol="sc12"))
    assert set(ds) == {"train", "validation", "test"}
    assert ds["train"].column_names == ["audio", "label", "word", "speaker_id"]
    assert labels_of(ds).protocol == "sc12"
    # validation: speaker a0, test: speaker a1 (from the list files); unlisted files are train.
    assert set(ds["validation"]["speaker_id"]) - {""} == {"000000a0"}
    assert set(ds["test"]["speaker_id"]) - {""} == {"000000a1"}
    assert "000000a0" not in ds["train"]["speaker_id"]
    for split, n_speakers in (("train", 8), ("validation", 1), ("test", 1)):
        words = words_of(ds[split])
        n_kw = 3 * n_speakers  # yes, no, up
        assert sum(w in ("yes", "no", "up") for w in words) == n_kw
        assert words.count(SILENCE) == math.ceil(n_kw * 0.1)
        # unknown words (bed, cat) are sampled to 10 % of the keywords
        assert sum(w in ("bed", "cat") for w in words) == math.ceil(n_kw * 0.1)
    names = ds["train"].features["label"].names
    assert [names[i] for i in ds["train"]["label"][:3]] == [
        {"bed": UNKNOWN, "cat": UNKNOWN}.get(w, w) for w in ds["train"]["word"][:3]
    ]
    clip = load_audio(ds["train"].cast_column("audio", Audio(decode=False))[0]["audio"], clip_seconds=1.0)
    assert clip.shape == (SR,)


def test_local_folder_without_lists_uses_the_hash_rule(tmp_path):
    speakers = [f"{i:08x}" for i in range(60)]
    root = write_sc_folder(tmp_path / "sc", ["yes", "no"], speakers, lists=False)
    ds = load_data(DataConfig(source=str(root), protocol="sc12"))
    for split in ds:
        for spk in set(ds[split]["speaker_id"]) - {""}:
            assert which_set(f"yes/{spk}_nohash_0.wav", 10, 10) == split
    summary = summarize(ds)
    assert summary["speakers_in_several_splits"] == []
    assert sum(s["speakers"] for s in summary["splits"].values()) == 60


def test_silence_and_unknown_percentages_and_seed(sc_folder):
    ds = load_data(DataConfig(source=str(sc_folder), silence_percentage=50, unknown_percentage=0))
    words = words_of(ds["train"])
    assert words.count(SILENCE) == math.ceil(24 * 0.5)
    assert sum(w in ("bed", "cat") for w in words) == 0
    a = load_data(DataConfig(source=str(sc_folder), seed=1))["train"]
    b = load_data(DataConfig(source=str(sc_folder), seed=1))["train"]
    c = load_data(DataConfig(source=str(sc_folder), seed=2))["train"]
    silence = lambda d: [x["audio"]["bytes"] for x in d if x["word"] == SILENCE]  # noqa: E731
    assert silence(a) == silence(b)  # deterministic crops
    assert silence(a) != silence(c)


def test_train_silence_percentage_changes_the_training_split_only(sc_folder):
    base = load_data(DataConfig(source=str(sc_folder), silence_percentage=10))
    more = load_data(DataConfig(source=str(sc_folder), silence_percentage=10, train_silence_percentage=150))
    assert words_of(more["train"]).count(SILENCE) == math.ceil(24 * 1.5) > words_of(base["train"]).count(SILENCE)
    for split in ("validation", "test"):
        assert words_of(more[split]) == words_of(base[split])
    only_train = load_data(DataConfig(source=str(sc_folder), silence_percentage=0, train_silence_percentage=50))
    assert words_of(only_train["train"]).count(SILENCE) == 12 and SILENCE not in words_of(only_train["test"])
    with pytest.raises(ValueError, match="--train-silence-percentage -1"):
        DataConfig(source=str(sc_folder), train_silence_percentage=-1)


def test_silence_crops_come_from_the_splits_own_stretch_of_noise():
    # Noise that is non-zero only in the test stretch (10 %..20 % of the file).
    noise = np.zeros(100 * SR, np.float32)
    noise[10 * SR : 20 * SR] = 0.5
    kw = dict(seed=0, clip_samples=SR, validation_percentage=10, testing_percentage=10)
    decode = lambda rows: [load_audio(r["audio"]) for r in rows]  # noqa: E731
    test = decode(silence_crops([("n", noise)], 20, "test", **kw))
    val = decode(silence_crops([("n", noise)], 20, "validation", **kw))
    train = decode(silence_crops([("n", noise)], 20, "train", **kw))
    assert all(len(c) == SR for c in test + val + train)
    assert all(np.all(c >= 0) and np.ptp(c) < 1e-3 for c in test)  # a constant level: inside the test stretch
    assert sum(np.abs(c).max() > 0 for c in test) >= 19  # volumes in [0, 1]; ~never exactly 0
    assert all(np.abs(c).max() == 0 for c in val + train)


def test_sc35_drops_other_words_and_custom_folders(tmp_path, sc_folder):
    ds = load_data(DataConfig(source=str(sc_folder), protocol="sc35"))
    assert UNKNOWN not in labels_of(ds).labels
    assert set(words_of(ds["train"])) == {"yes", "no", "up", "bed", "cat", SILENCE}

    root = write_sc_folder(
        tmp_path / "mine", ["lights on", "lights off", "music"], ["a", "b", "c"], lists=False, noise_seconds=0
    )
    custom = load_data(DataConfig(source=str(root), protocol="custom", words=["lights on", "lights off"]))
    assert labels_of(custom).labels == ("lights on", "lights off", UNKNOWN)  # no noise folder: no _silence_
    allwords = load_data(DataConfig(source=str(root), protocol="custom"))
    assert labels_of(allwords).labels == ("lights off", "lights on", "music")


def test_local_folder_errors(tmp_path):
    with pytest.raises(DataSourceError, match="no such folder and not a hub dataset id"):
        load_data(DataConfig(source=str(tmp_path / "nope")))
    (tmp_path / "empty" / "yes").mkdir(parents=True)
    with pytest.raises(DataSourceError, match="no audio files"):
        load_data(DataConfig(source=str(tmp_path / "empty")))
    root = write_sc_folder(tmp_path / "quiet", ["yes"], ["a", "b", "c"], noise_seconds=0)
    with pytest.raises(DataSourceError, match="--silence-percentage 0"):
        load_data(DataConfig(source=str(root)))
    assert len(load_data(DataConfig(source=str(root), silence_percentage=0))["train"]) == 1
    with pytest.raises(ValueError, match="leaves nothing to train on"):
        DataConfig(validation_percentage=60, testing_percentage=40)


# --- hub google/speech_commands (parquet conversion), offline on a fixture in the hub's schema ---------------------


HUB_FEATURES = Features(
    {
        "file": Value("string"),
        "audio": Audio(sampling_rate=16000),
        "label": ClassLabel(names=list(HUB_LABELS_V2)),
        "is_unknown": Value("bool"),
        "speaker_id": Value("string"),
        "utterance_id": Value("int8"),
    }
)


def _hub_row(word, speaker, seconds=1.0, freq=300.0):
    name = f"{word}/{speaker}_nohash_0.wav" if speaker else f"_background_noise_/{word}.wav"
    samples = (
        tone(freq, seconds) if speaker else 0.1 * np.random.default_rng(len(word)).standard_normal(int(seconds * SR))
    )
    return {
        "file": name,
        "audio": {"bytes": wav_bytes(samples), "path": name},
        "label": HUB_LABELS_V2.index(word if speaker else SILENCE),
        "is_unknown": word not in HUB_LABELS_V2[:10],
        "speaker_id": speaker,
        "utterance_id": 0,
    }


@pytest.fixture
def hub_fixture(tmp_path):
    rows = {
        "train": [_hub_row(w, f"{s:08x}") for w in ("yes", "no", "bed", "cat", "dog") for s in range(10)]
        + [_hub_row("white_noise", None, 10.0), _hub_row("pink_noise", None, 12.0)],
        "validation": [_hub_row(w, f"{s:08x}") for w in ("yes", "no", "bed") for s in range(10, 14)],
        # the official test set: 1 s silence clips and unknown words already in place
        "test": [_hub_row(w, f"{s:08x}") for w in ("yes", "no", "tree") for s in range(20, 23)]
        + [dict(_hub_row("noise_clip", None, 1.0), file="_silence_/a.wav")],
    }
    for split, items in rows.items():
        out = tmp_path / "v0.02" / split
        out.mkdir(parents=True)
        columns = {k: [r[k] for r in items] for k in HUB_FEATURES}
        table_with_audio(columns, HUB_FEATURES).to_parquet(str(out / "0000.parquet"))
    return tmp_path


def test_hub_parquet_path_sc12(hub_fixture):
    ds = load_hub_speech_commands(DataConfig(source="google/speech_commands"), repo=str(hub_fixture), revision=None)
    assert labels_of(ds).protocol == "sc12"
    train = words_of(ds["train"])
    assert train.count("yes") == 10 and train.count("no") == 10
    assert sum(w in ("bed", "cat", "dog") for w in train) == math.ceil(20 * 0.1)
    assert train.count(SILENCE) == math.ceil(20 * 0.1)  # cropped from the long background rows
    assert "white_noise" not in train and "" in ds["train"]["speaker_id"]
    test = words_of(ds["test"])
    assert len(test) == 10 and test.count("tree") == 3 and test.count(SILENCE) == 1  # kept as it is
    for row in ds["train"].cast_column("audio", Audio(decode=False)):
        assert load_audio(row["audio"], clip_seconds=1.0).shape == (SR,)
    names = ds["test"].features["label"].names
    assert {names[i] for i, w in zip(ds["test"]["label"], test) if w == "tree"} == {UNKNOWN}


def test_hub_unreachable_fails_with_one_line_pointing_to_local_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataSourceError) as info:
        load_data(DataConfig(source="google/speech_commands"))
    message = str(info.value)
    assert "\n" not in message
    assert "cannot load google/speech_commands" in message and "--data path/to/speech_commands" in message


# --- any hub audio-classification dataset (MInDS-14 shape), from a local parquet copy ---------------------------


def test_generic_audio_classification_dataset_is_split_by_seed_or_speaker(tmp_path):
    intents = ["balance", "freeze", "address"]
    feats = Features({"audio": Audio(), "intent_class": ClassLabel(names=intents), "caller": Value("string")})
    items = [(i % 3, f"c{i % 12}") for i in range(60)]
    table = table_with_audio(
        {
            "audio": [
                {"bytes": wav_bytes(tone(200 + 10 * c, 2.0)), "path": f"{k}.wav"} for k, (c, _) in enumerate(items)
            ],
            "intent_class": [c for c, _ in items],
            "caller": [s for _, s in items],
        },
        feats,
    )
    (tmp_path / "minds").mkdir()
    table.to_parquet(str(tmp_path / "minds" / "train.parquet"))
    cfg = DataConfig(source=str(tmp_path / "minds"), protocol="custom", label_column="intent_class", clip_seconds=3.0)
    ds = load_data(cfg)
    assert sum(len(d) for d in ds.values()) == 60
    assert len(ds["validation"]) == 6 and len(ds["test"]) == 6
    assert labels_of(ds).labels == tuple(intents)
    by_speaker = load_data(DataConfig(**{**cfg.__dict__, "speaker_column": "caller"}))
    assert summarize(by_speaker)["speakers_in_several_splits"] == []
    with pytest.raises(DataSourceError, match="--label-column intent not found in .*; one of"):
        load_data(DataConfig(**{**cfg.__dict__, "label_column": "intent"}))
    with pytest.raises(DataSourceError, match="pass --protocol custom"):
        load_data(DataConfig(source=str(tmp_path / "minds")))
