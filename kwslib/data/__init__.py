"""Every data source ends in the same DatasetDict: train/validation/test with `audio`, `label`, `word`,
`speaker_id` (audio undecoded: a path or bytes, decoded by `kwslib.audio`)."""

from __future__ import annotations

import re
from pathlib import Path

from datasets import DatasetDict

from kwslib.config import DataConfig
from kwslib.data.dataset import SPLITS, DataSourceError, speaker_of, which_set
from kwslib.data.speech_commands import (
    HUB_SPEECH_COMMANDS,
    background_noise_files,
    load_hub_speech_commands,
    load_local,
)
from kwslib.labels import SC12_KEYWORDS, SC35_WORDS, SILENCE, UNKNOWN, LabelSet

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")

__all__ = [
    "SPLITS",
    "DataSourceError",
    "background_noise_files",
    "labels_of",
    "load_data",
    "load_noises",
    "speaker_of",
    "which_set",
]


def load_data(cfg: DataConfig) -> DatasetDict:
    """The DatasetDict for `cfg.source`: a local folder, `google/speech_commands`, or another hub dataset."""
    source = cfg.source
    path = Path(source).expanduser()
    if path.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        return load_local(cfg)
    if source.rstrip("/") in (HUB_SPEECH_COMMANDS, "speech_commands"):
        return load_hub_speech_commands(cfg)
    if path.exists() or _HUB_ID.fullmatch(source):
        # A local folder of parquet/csv files loads through datasets like a hub id (owner/name) does.
        if cfg.protocol != "custom":
            raise DataSourceError(
                f"--data {source}: a generic audio-classification dataset uses its own classes; pass --protocol custom"
            )
        from kwslib.data.hub import load_hub_audio_classification

        return load_hub_audio_classification(cfg)
    raise DataSourceError(
        f"--data {source}: no such folder and not a hub dataset id; make data with `kws synth --out {source}`"
    )


def load_noises(cfg: DataConfig) -> list:
    """Background noise recordings of `cfg.source` as 16 kHz float32 arrays, for augmentation ([] if it has none)."""
    from kwslib.audio import load_audio

    path = Path(cfg.source).expanduser()
    if path.is_dir():
        return [load_audio(p) for p in background_noise_files(path)]
    if cfg.source.rstrip("/") in (HUB_SPEECH_COMMANDS, "speech_commands"):
        from kwslib.data.speech_commands import hub_background_noises

        return [samples for _, samples in hub_background_noises()]
    return []


def labels_of(dataset: DatasetDict) -> LabelSet:
    """The LabelSet a kwslib DatasetDict was built with, read back from its `label` ClassLabel."""
    names = tuple(next(iter(dataset.values())).features["label"].names)
    keywords = tuple(n for n in names if n not in (SILENCE, UNKNOWN))
    protocol = {SC12_KEYWORDS: "sc12", SC35_WORDS: "sc35"}.get(keywords, "custom")
    return LabelSet(protocol, keywords, SILENCE in names, UNKNOWN in names)
