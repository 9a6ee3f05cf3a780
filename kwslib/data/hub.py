"""Any hub (or local) audio-classification dataset with an audio column and a label column,
e.g. `PolyAI/minds14` with `--label-column intent_class`."""

from __future__ import annotations

import numpy as np
from datasets import Audio, ClassLabel, DatasetDict

from kwslib.config import DataConfig
from kwslib.data.dataset import SPLITS, DataSourceError, features, split_rng, which_set
from kwslib.labels import label_set

# Other names datasets use for the held-out splits.
_SPLIT_ALIASES = {"valid": "validation", "dev": "validation", "val": "validation", "eval": "test"}


def load_hub_audio_classification(cfg: DataConfig) -> DatasetDict:
    """Load `cfg.source` with datasets, keep audio undecoded, map labels through the custom protocol.

    A dataset with only `train` (or no validation) is split: by speaker hash when `--speaker-column` is given,
    else by a permutation seeded with `--seed`.
    """
    import datasets

    try:
        raw = datasets.load_dataset(cfg.source, cfg.dataset_config, revision=cfg.revision)
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataSourceError(
            f"cannot load dataset {cfg.source!r} ({type(err).__name__}: {reason[:160]}); check the id and your "
            "connection, or use a local folder <root>/<label>/*.wav with --data"
        ) from None
    if not isinstance(raw, DatasetDict):
        raw = DatasetDict({"train": raw})
    raw = DatasetDict({_SPLIT_ALIASES.get(name, name): ds for name, ds in raw.items()})
    first = next(iter(raw.values()))
    columns = first.column_names
    for option, column in (("--audio-column", cfg.audio_column), ("--label-column", cfg.label_column)):
        if column not in columns:
            raise DataSourceError(f"{option} {column} not found in {cfg.source}; one of {columns}")
    if cfg.speaker_column and cfg.speaker_column not in columns:
        raise DataSourceError(f"--speaker-column {cfg.speaker_column} not found in {cfg.source}; one of {columns}")

    label_feature = first.features[cfg.label_column]
    if isinstance(label_feature, ClassLabel):
        names = list(label_feature.names)
    else:
        names = sorted({str(v) for ds in raw.values() for v in ds[cfg.label_column]})
    to_word = (lambda v: names[v]) if isinstance(label_feature, ClassLabel) else str
    keywords = cfg.words or names
    unknown = bool(set(names) - set(keywords))
    labels = label_set("custom", keywords, silence=False, unknown=unknown)

    def convert(ds):
        ds = ds.cast_column(cfg.audio_column, Audio(decode=False))
        words = [to_word(v).lower() for v in ds[cfg.label_column]]
        speakers = [str(s) for s in ds[cfg.speaker_column]] if cfg.speaker_column else [""] * len(ds)
        out = ds.select_columns([cfg.audio_column])
        if cfg.audio_column != "audio":
            out = out.rename_column(cfg.audio_column, "audio")
        out = out.add_column("label", [labels.id_of(w) for w in words])
        out = out.add_column("word", words)
        out = out.add_column("speaker_id", speakers)
        return out.cast(features(labels))

    converted = {name: convert(ds) for name, ds in raw.items()}
    if all(s in converted for s in SPLITS):
        return DatasetDict({s: converted[s] for s in SPLITS})
    return _split(converted, cfg)


def _split(parts: dict, cfg: DataConfig) -> DatasetDict:
    """Carve the missing held-out splits out of train (an existing test split is kept)."""
    train = parts["train"]
    val_pct = cfg.validation_percentage
    test_pct = 0.0 if "test" in parts else cfg.testing_percentage
    if cfg.speaker_column:
        which = [which_set(s + "_nohash_", val_pct, test_pct) if s else "train" for s in train["speaker_id"]]
    else:
        order = split_rng(cfg.seed, "all", "split").permutation(len(train))
        n_val = int(round(len(train) * val_pct / 100))
        n_test = int(round(len(train) * test_pct / 100))
        which = np.empty(len(train), dtype=object)
        which[order[:n_val]] = "validation"
        which[order[n_val : n_val + n_test]] = "test"
        which[order[n_val + n_test :]] = "train"
    out = {s: train.select([i for i, w in enumerate(which) if w == s]) for s in SPLITS}
    if "test" in parts:
        out["test"] = parts["test"]
    return DatasetDict(out)
