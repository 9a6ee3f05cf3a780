"""Speech Commands from a local folder (the official v0.02 tarball layout, or a custom `<root>/<label>/` folder)
and from the hub's `google/speech_commands` parquet conversion.

Both follow the TensorFlow / kws_streaming reference protocol: keywords as they are, `_unknown_` sampled from
the other words and `_silence_` cropped from background noise, each as a percentage of a split's keywords.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from datasets import Audio, Dataset, DatasetDict, concatenate_datasets

from kwslib.audio import AudioError, load_audio
from kwslib.config import SAMPLE_RATE, DataConfig
from kwslib.data.dataset import (
    SPLITS,
    DataSourceError,
    clip_seconds_of,
    extra_count,
    features,
    rows_to_dataset,
    sample_indices,
    silence_crops,
    speaker_of,
    split_rng,
    which_set,
)
from kwslib.labels import BACKGROUND_NOISE_DIR, SC35_WORDS, SILENCE, UNKNOWN, LabelSet, label_set

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"

HUB_SPEECH_COMMANDS = "google/speech_commands"
HUB_PARQUET_REVISION = "refs/convert/parquet"
HUB_CONFIG_DIR = "v0.02"
# The hub dataset's ClassLabel names for v0.02, used when a parquet file carries no feature metadata.
HUB_LABELS_V2 = SC35_WORDS + (UNKNOWN, SILENCE)


# ---------------------------------------------------------------------------------------------------------------
# Local folder


def scan_folder(root: Path) -> tuple[list[tuple[str, str]], list[Path]]:
    """(relative path, word) of every audio file in `<root>/<word>/`, and the background noise files."""
    if not root.is_dir():
        raise DataSourceError(f"--data {root}: no such folder")
    clips, noises = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in os.listdir(sub) if f.lower().endswith(AUDIO_EXTENSIONS))
        if sub.name == BACKGROUND_NOISE_DIR:
            noises = [sub / f for f in files]
            continue
        clips.extend((f"{sub.name}/{f}", sub.name.lower()) for f in files)
    if not clips:
        raise DataSourceError(
            f"--data {root}: no audio files in <word>/ subfolders; expected the Speech Commands layout "
            f"<word>/<speaker>_nohash_<n>.wav (make one with `kws synth --out {root}`)"
        )
    return clips, noises


def _read_list(root: Path, name: str) -> set[str] | None:
    path = root / name
    if not path.exists():
        return None
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines() if line.strip()}


def assign_splits(root: Path, rel_paths: list[str], cfg: DataConfig) -> dict[str, str]:
    """Split of every file: the official list files when present (unlisted files are train), else the hash rule."""
    val_list, test_list = _read_list(root, VALIDATION_LIST), _read_list(root, TESTING_LIST)
    if val_list is None and test_list is None:
        return {p: which_set(p, cfg.validation_percentage, cfg.testing_percentage) for p in rel_paths}
    val_list, test_list = val_list or set(), test_list or set()
    both = val_list & test_list
    if both:
        raise DataSourceError(
            f"{root}: {len(both)} files are in both list files, e.g. {sorted(both)[0]}; fix the lists"
        )
    return {p: "validation" if p in val_list else "test" if p in test_list else "train" for p in rel_paths}


def _local_label_set(cfg: DataConfig, words: set[str], has_noise: bool) -> LabelSet:
    if cfg.protocol != "custom":
        return label_set(cfg.protocol)
    keywords = cfg.words or sorted(words - {SILENCE, UNKNOWN})
    if not keywords:
        raise DataSourceError(f"--data {cfg.source}: only _silence_/_unknown_ folders; add one folder per keyword")
    others = words - set(keywords) - {SILENCE}
    return label_set("custom", keywords, silence=has_noise or SILENCE in words, unknown=bool(others))


def load_local(cfg: DataConfig) -> DatasetDict:
    """A Speech Commands folder (or a custom `<root>/<label>/*.wav` folder) as a DatasetDict."""
    root = Path(cfg.source)
    clips, noise_paths = scan_folder(root)
    labels = _local_label_set(cfg, {w for _, w in clips}, bool(noise_paths))
    missing = [w for w in labels.keywords if w not in {w for _, w in clips}]
    if missing:
        log.warning("%s: no clips for keywords %s; they will have no examples", root, missing)
    split_of = assign_splits(root, [p for p, _ in clips], cfg)

    by_split = {s: {"keyword": [], "unknown": [], "silence": []} for s in SPLITS}
    for rel, word in clips:
        label = labels.label_of(word)
        if label is None:
            continue
        kind = "silence" if label == SILENCE else "unknown" if label == UNKNOWN else "keyword"
        row = {"audio": str(root / rel), "word": word, "speaker_id": "" if kind == "silence" else speaker_of(rel)}
        by_split[split_of[rel]][kind].append(row)

    wants_silence = labels.silence and max(cfg.silence_share(s) for s in SPLITS) > 0
    noises = _decode_noises(noise_paths) if wants_silence else []
    if wants_silence and not noises and not any(b["silence"] for b in by_split.values()):
        raise DataSourceError(
            f"--data {root}: no {BACKGROUND_NOISE_DIR}/ recordings to crop _silence_ examples from; "
            f"add some, or pass --silence-percentage 0"
        )
    out = {}
    for split in SPLITS:
        part = by_split[split]
        n_kw = len(part["keyword"])
        rows = list(part["keyword"])
        if labels.unknown:
            want = extra_count(n_kw, cfg.unknown_percentage)
            pick = sample_indices(len(part["unknown"]), want, split_rng(cfg.seed, split, "unknown"))
            rows += [part["unknown"][i] for i in pick]
        if labels.silence:
            rows += part["silence"]
            want = extra_count(n_kw, cfg.silence_share(split)) - len(part["silence"])
            rows += silence_crops(
                noises,
                want,
                split,
                seed=cfg.seed,
                clip_samples=int(round(cfg.clip_seconds * SAMPLE_RATE)),
                validation_percentage=cfg.validation_percentage,
                testing_percentage=cfg.testing_percentage,
            )
        out[split] = rows_to_dataset(rows, labels)
    return DatasetDict(out)


def _decode_noises(paths: list[Path]) -> list[tuple[str, np.ndarray]]:
    noises = []
    for path in paths:
        try:
            noises.append((path.stem, load_audio(path)))
        except AudioError as err:
            log.warning("skipping background noise: %s", err)
    return noises


def background_noise_files(root: str | os.PathLike) -> list[Path]:
    """The `_background_noise_/` recordings of a Speech Commands folder (used for silence and augmentation)."""
    folder = Path(root) / BACKGROUND_NOISE_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)


# ---------------------------------------------------------------------------------------------------------------
# Hub: google/speech_commands, parquet conversion


def load_hub_speech_commands(
    cfg: DataConfig, *, repo: str = HUB_SPEECH_COMMANDS, revision: str | None = HUB_PARQUET_REVISION
) -> DatasetDict:
    """`google/speech_commands` v0.02 from its parquet conversion (the loading script is refused by datasets>=4).

    The hub's `test` split is the official 4,890-clip test set and is kept as it is; train and validation get
    sampled `_unknown_` and `_silence_` crops of the long background recordings, as for a local folder.
    `repo` may be a local folder with the same `v0.02/<split>/*.parquet` layout.
    """
    import datasets

    labels = label_set(cfg.protocol, cfg.words)
    try:
        raw = datasets.load_dataset(repo, revision=revision, data_dir=HUB_CONFIG_DIR)
    except Exception as err:  # offline, unreachable, or gone: every cause gets the same way out
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataSourceError(
            f"cannot load {repo} from the Hugging Face Hub ({type(err).__name__}: {reason[:160]}); "
            "download speech_commands_v0.02.tar.gz, extract it and pass the folder: --data path/to/speech_commands"
        ) from None
    missing = [s for s in SPLITS if s not in raw]
    if missing:
        raise DataSourceError(f"{repo}: splits {missing} are missing; found {list(raw)}")
    clip_samples = int(round(cfg.clip_seconds * SAMPLE_RATE))
    parts = {}
    for split in SPLITS:
        ds = raw[split].cast_column("audio", Audio(decode=False))
        words = _hub_words(ds)
        speakers = [s or "" for s in ds["speaker_id"]] if "speaker_id" in ds.column_names else [""] * len(ds)
        parts[split] = (ds, words, speakers)
    noises = _long_silence_rows(parts["train"][0], parts["train"][1], repo)
    out = {}
    for split in SPLITS:
        ds, words, speakers = parts[split]
        keep_as_is = split == "test"
        kw, unknown, direct_silence = [], [], []
        for i, w in enumerate(words):
            label = labels.label_of(w)
            if label is None:
                continue
            if label == SILENCE:
                # Long background files are a noise source (train); 1 s silence clips are examples (test).
                if keep_as_is or clip_seconds_of(ds[i]["audio"]) <= 1.5 * cfg.clip_seconds:
                    direct_silence.append(i)
            elif label == UNKNOWN:
                unknown.append(i)
            else:
                kw.append(i)
        chosen = kw + direct_silence
        if labels.unknown:
            if keep_as_is:
                chosen += unknown
            else:
                pick = sample_indices(
                    len(unknown), extra_count(len(kw), cfg.unknown_percentage), split_rng(cfg.seed, split, "unknown")
                )
                chosen += [unknown[j] for j in pick]
        chosen.sort()
        table = _hub_rows(ds, chosen, words, speakers, labels)
        if labels.silence and not keep_as_is:
            crops = silence_crops(
                noises,
                extra_count(len(kw), cfg.silence_share(split)) - len(direct_silence),
                split,
                seed=cfg.seed,
                clip_samples=clip_samples,
                validation_percentage=cfg.validation_percentage,
                testing_percentage=cfg.testing_percentage,
            )
            if crops:
                table = concatenate_datasets([table, rows_to_dataset(crops, labels)])
        out[split] = table
    return DatasetDict(out)


def _hub_words(ds: Dataset) -> list[str]:
    names = list(getattr(ds.features["label"], "names", None) or HUB_LABELS_V2)
    return [names[i] for i in ds["label"]]


def _long_silence_rows(ds: Dataset, words: list[str], repo: str) -> list[tuple[str, np.ndarray]]:
    """The hub's `_silence_` rows in train are the long background recordings: decode them as noise sources."""
    noises = []
    for i, w in enumerate(words):
        if w == SILENCE:
            item = ds[i]["audio"]
            noises.append(
                (Path(item.get("path") or f"noise_{i}").stem, load_audio(item, name=f"{repo}:{item.get('path')}"))
            )
    return noises


def hub_background_noises(
    repo: str = HUB_SPEECH_COMMANDS, revision: str | None = HUB_PARQUET_REVISION
) -> list[tuple[str, np.ndarray]]:
    """The background recordings of the hub dataset (for augmentation), loaded from its train split."""
    import datasets

    try:
        train = datasets.load_dataset(repo, revision=revision, data_dir=HUB_CONFIG_DIR, split="train")
    except Exception as err:
        raise DataSourceError(f"cannot load {repo} background noise from the hub ({type(err).__name__})") from None
    train = train.cast_column("audio", Audio(decode=False))
    return _long_silence_rows(train, _hub_words(train), repo)


def _hub_rows(ds: Dataset, indices: list[int], words: list[str], speakers: list[str], labels: LabelSet) -> Dataset:
    picked = ds.select(indices).select_columns(["audio"])
    picked = picked.add_column("label", [labels.id_of(words[i]) for i in indices])
    picked = picked.add_column("word", [words[i] for i in indices])
    picked = picked.add_column("speaker_id", [speakers[i] for i in indices])
    return picked.cast(features(labels))
