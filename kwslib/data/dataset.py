"""The one shape every source ends in: a DatasetDict with `audio`, `label`, `word`, `speaker_id`."""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, Value

from kwslib.config import SAMPLE_RATE
from kwslib.labels import LabelSet

SPLITS = ("train", "validation", "test")
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # the constant of TensorFlow's speech_commands input_data.which_set
_NOHASH = re.compile(r"_nohash_.*$")
_AUDIO_STORAGE = {"bytes": Value("binary"), "path": Value("string")}


class DataSourceError(ValueError):
    """A data source that cannot be used as given (missing, unreachable, or the wrong shape)."""


def features(labels: LabelSet) -> Features:
    """The columns of every kwslib dataset; audio stays undecoded (kwslib.audio decodes it)."""
    return Features(
        {
            "audio": Audio(sampling_rate=SAMPLE_RATE, decode=False),
            "label": ClassLabel(names=list(labels.labels)),
            "word": Value("string"),
            "speaker_id": Value("string"),
        }
    )


def rows_to_dataset(rows: list[dict], labels: LabelSet) -> Dataset:
    """Build a Dataset from rows of {"audio": path | bytes, "word", "speaker_id"}; label comes from the word."""
    columns = {"audio": [], "label": [], "word": [], "speaker_id": []}
    for row in rows:
        audio = row["audio"]
        if isinstance(audio, (bytes, bytearray)):
            audio = {"bytes": bytes(audio), "path": row.get("name")}
        elif not isinstance(audio, dict):
            audio = {"bytes": None, "path": str(audio)}
        label_id = labels.id_of(row["word"])
        if label_id is None:
            raise AssertionError(f"row with word {row['word']!r} should have been dropped before")
        columns["audio"].append(audio)
        columns["label"].append(label_id)
        columns["word"].append(row["word"])
        columns["speaker_id"].append(row.get("speaker_id") or "")
    return table_with_audio(columns, features(labels))


def table_with_audio(columns: dict, feats: Features) -> Dataset:
    """Dataset.from_dict for columns holding undecoded audio dicts ({"bytes", "path"}).

    datasets 5 encodes Audio values through torchcodec even when they are already bytes or paths, so the table
    is built with the plain struct Audio stores and then cast to Audio, which happens in Arrow.
    """
    audio_columns = [name for name, f in feats.items() if isinstance(f, Audio)]
    plain = Features({name: _AUDIO_STORAGE if name in audio_columns else f for name, f in feats.items()})
    table = Dataset.from_dict(columns, features=plain)
    for name in audio_columns:
        table = table.cast_column(name, feats[name])
    return table


def speaker_of(filename: str) -> str:
    """The speaker part of a Speech Commands file name (`<speaker>_nohash_<n>.wav`), else the file stem."""
    base = filename.rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0]
    return _NOHASH.sub("", stem) if "_nohash_" in stem else stem


def which_set(filename: str, validation_percentage: float, testing_percentage: float) -> str:
    """The official Speech Commands split rule: a SHA-1 hash of the speaker part of the name.

    Same result as TensorFlow's `input_data.which_set`, so one speaker never spans two splits and
    adding files never moves old ones.
    """
    hash_name = _NOHASH.sub("", filename.rsplit("/", 1)[-1])
    digest = int(hashlib.sha1(hash_name.encode("utf-8")).hexdigest(), 16)
    percentage = (digest % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "test"
    return "train"


def extra_count(n_keywords: int, percentage: float) -> int:
    """How many _silence_ or _unknown_ examples a split gets: a percentage of its keyword examples (TF rule)."""
    return int(math.ceil(n_keywords * percentage / 100.0))


def split_rng(seed: int, split: str, purpose: str) -> np.random.Generator:
    """A generator that depends only on (seed, split, purpose), so each choice is stable on its own."""
    digest = hashlib.sha1(f"{seed}|{split}|{purpose}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def silence_crops(
    noises: list[tuple[str, np.ndarray]],
    count: int,
    split: str,
    *,
    seed: int,
    clip_samples: int,
    validation_percentage: float,
    testing_percentage: float,
) -> list[dict]:
    """`count` deterministic 1-clip crops of background noise for `split`, as WAV-bytes rows.

    Each noise recording is cut in time into train / validation / test regions (the split's share of its
    length), so no stretch of noise is heard in two splits. Crops cycle over the recordings; the offset and
    a volume in [0, 1] (TensorFlow's silence recipe: background at a random volume) come from a generator
    seeded by (seed, split) alone.
    """
    from kwslib.audio import fix_length, wav_bytes

    if count <= 0 or not noises:
        return []
    val, test = validation_percentage / 100.0, testing_percentage / 100.0
    bounds = {"validation": (0.0, val), "test": (val, val + test), "train": (val + test, 1.0)}[split]
    rng = split_rng(seed, split, "silence")
    rows = []
    for i in range(count):
        name, samples = noises[i % len(noises)]
        lo, hi = (int(b * len(samples)) for b in bounds)
        region = samples[lo:hi]
        if len(region) > clip_samples:
            start = int(rng.integers(0, len(region) - clip_samples + 1))
            crop = region[start : start + clip_samples]
        else:
            crop = fix_length(region if len(region) else samples, clip_samples)
            rng.integers(0, 1)  # keep the stream of draws the same shape whatever the file lengths
        volume = float(rng.uniform(0.0, 1.0))
        rows.append(
            {
                "audio": wav_bytes(crop * volume),
                "name": f"_silence_/{split}_{i:05d}_{name}.wav",
                "word": "_silence_",
                "speaker_id": "",
            }
        )
    return rows


def sample_indices(n_available: int, count: int, rng: np.random.Generator) -> list[int]:
    """`count` distinct indices out of `n_available` (all of them when there are fewer), sorted."""
    if count >= n_available:
        return list(range(n_available))
    return sorted(rng.choice(n_available, size=count, replace=False).tolist())


def clip_seconds_of(audio: dict) -> float:
    """Duration of an undecoded audio cell (path or bytes), read from its header only."""
    import io

    import soundfile as sf

    info = sf.info(io.BytesIO(audio["bytes"])) if audio.get("bytes") else sf.info(audio["path"])
    return info.frames / info.samplerate


def summarize(dataset: DatasetDict) -> dict:
    """Counts per split, label and speaker, clip durations, and speakers found in more than one split."""
    out = {"splits": {}, "labels": list(next(iter(dataset.values())).features["label"].names)}
    speakers_by_split = {}
    for split, ds in dataset.items():
        names = ds.features["label"].names
        labels = np.bincount(np.asarray(ds["label"], dtype=np.int64), minlength=len(names)) if len(ds) else []
        speakers = [s for s in ds["speaker_id"] if s]
        speakers_by_split[split] = set(speakers)
        durations = np.array([clip_seconds_of(a) for a in ds.cast_column("audio", Audio(decode=False))["audio"]])
        out["splits"][split] = {
            "clips": len(ds),
            "per_label": {names[i]: int(c) for i, c in enumerate(labels)},
            "speakers": len(set(speakers)),
            "clips_per_speaker_median": float(np.median(np.unique(speakers, return_counts=True)[1]))
            if speakers
            else 0.0,
            "seconds": {
                "total": float(durations.sum()) if len(durations) else 0.0,
                "min": float(durations.min()) if len(durations) else 0.0,
                "mean": float(durations.mean()) if len(durations) else 0.0,
                "max": float(durations.max()) if len(durations) else 0.0,
            },
        }
    shared = set()
    splits = list(speakers_by_split)
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            shared |= speakers_by_split[a] & speakers_by_split[b]
    out["speakers_in_several_splits"] = sorted(shared)
    return out


def clip_stats(split: Dataset, max_clips: int | None = 500, seed: int = 0) -> list[dict]:
    """Per clip of a (seeded sample of a) split: label, word, speaker, seconds, RMS and peak level in dBFS."""
    from kwslib.audio import load_audio

    names = split.features["label"].names
    indices = np.arange(len(split))
    if max_clips is not None and max_clips < len(split):
        indices = np.sort(np.random.default_rng(seed).choice(len(split), max_clips, replace=False))
    rows = split.cast_column("audio", Audio(decode=False)).select(indices.tolist())
    out = []
    for row in rows:
        x = load_audio(row["audio"])
        rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
        out.append(
            {
                "label": names[row["label"]],
                "word": row["word"],
                "speaker_id": row["speaker_id"],
                "seconds": len(x) / SAMPLE_RATE,
                "rms_dbfs": 20 * np.log10(max(rms, 1e-10)),
                "peak_dbfs": 20 * np.log10(max(float(np.abs(x).max()), 1e-10)),
            }
        )
    return out
