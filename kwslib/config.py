"""One dataclass per stage. The CLI and the notebooks build these; functions take them as arguments."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field

SAMPLE_RATE = 16_000


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class DataConfig:
    """Where the audio comes from and how it becomes train/validation/test."""

    source: str = field(
        default="data/synth",
        metadata=_help(
            "a Speech Commands folder (official v0.02 layout), a custom folder <root>/<label>/*.wav, "
            "'google/speech_commands', or any hub audio-classification dataset id"
        ),
    )
    protocol: str = field(default="sc12", metadata=_help("label protocol: sc12, sc35 or custom"))
    words: list[str] | None = field(
        default=None,
        metadata=_help("keywords for the custom protocol (default: every folder name); others become _unknown_"),
    )
    clip_seconds: float = field(default=1.0, metadata=_help("clip length in seconds (1.0 for Speech Commands)"))
    silence_percentage: float = field(
        default=10.0, metadata=_help("_silence_ examples per split, as a percentage of its keyword examples")
    )
    unknown_percentage: float = field(
        default=10.0, metadata=_help("_unknown_ examples per split, as a percentage of its keyword examples")
    )
    validation_percentage: float = field(
        default=10.0, metadata=_help("validation share for the speaker-hash rule when no list files exist")
    )
    testing_percentage: float = field(
        default=10.0, metadata=_help("test share for the speaker-hash rule when no list files exist")
    )
    audio_column: str = field(default="audio", metadata=_help("audio column of a hub dataset"))
    label_column: str = field(default="label", metadata=_help("label column of a hub dataset"))
    speaker_column: str | None = field(
        default=None, metadata=_help("speaker column of a hub dataset (keeps speakers out of two splits)")
    )
    dataset_config: str | None = field(default=None, metadata=_help("hub dataset configuration name"))
    revision: str | None = field(default=None, metadata=_help("hub revision (branch, tag or commit)"))
    seed: int = field(default=0, metadata=_help("seed for sampling _unknown_/_silence_ and for random splits"))

    def __post_init__(self):
        from kwslib.labels import PROTOCOLS

        if self.protocol not in PROTOCOLS:
            raise ValueError(f"--protocol {self.protocol} is unknown; use one of {', '.join(PROTOCOLS)}")
        _check_positive("clip_seconds", self.clip_seconds)
        for name in ("silence_percentage", "unknown_percentage", "validation_percentage", "testing_percentage"):
            _check_range(name, getattr(self, name), 0.0, 100.0)
        if self.validation_percentage + self.testing_percentage >= 100:
            raise ValueError(
                f"--validation-percentage {self.validation_percentage} + --testing-percentage "
                f"{self.testing_percentage} leaves nothing to train on; keep their sum below 100"
            )


@dataclass
class SynthConfig:
    """A synthetic Speech Commands dataset made with text-to-speech engines."""

    out: str = field(default="data/synth", metadata=_help("output folder (official Speech Commands layout)"))
    words: list[str] | None = field(
        default=None, metadata=_help("words or short phrases to speak (default: the 35 Speech Commands words)")
    )
    speakers: int = field(default=150, metadata=_help("number of synthetic speakers (engine + voice + prosody)"))
    engines: list[str] = field(
        default_factory=lambda: ["espeak-ng", "flite", "festival"],
        metadata=_help("TTS engines to use; missing ones are skipped with a warning"),
    )
    clip_seconds: float = field(default=1.0, metadata=_help("clip length in seconds"))
    validation_fraction: float = field(default=0.1, metadata=_help("share of voices held out for validation"))
    test_fraction: float = field(default=0.1, metadata=_help("share of voices held out for test"))
    noise_seconds: float = field(default=60.0, metadata=_help("length of each generated background noise file"))
    seed: int = field(default=0, metadata=_help("same seed => identical files"))
    jobs: int = field(default=0, metadata=_help("parallel worker processes (0 = one per CPU core)"))
    overwrite: bool = field(default=False, metadata=_help("replace an existing dataset in --out"))

    def __post_init__(self):
        if self.speakers < 3:
            raise ValueError(f"--speakers {self.speakers} is too few: train, validation and test need one each")
        _check_positive("clip_seconds", self.clip_seconds)
        _check_positive("noise_seconds", self.noise_seconds)
        _check_range("validation_fraction", self.validation_fraction, 0.0, 0.5)
        _check_range("test_fraction", self.test_fraction, 0.0, 0.5)
        if self.jobs < 0:
            raise ValueError(f"--jobs {self.jobs} must be 0 (one per core) or a positive number")
        if self.words is not None and not [w for w in self.words if w.strip()]:
            raise ValueError("--words is empty; give at least one word, e.g. --words yes,no")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"--{name.replace('_', '-')} {value} must be greater than 0")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"--{name.replace('_', '-')} {value} must be between {low} and {high}")


# ---------------------------------------------------------------------------------------------
# Dataclass <-> argparse, so the CLI never restates a default or a help string.


def _unwrap_optional(tp):
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = ()) -> None:
    """Add one `--field-name` option per dataclass field, with its type, default and help."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp = _unwrap_optional(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flag = "--" + f.name.replace("_", "-")
        kw = {"dest": f.name, "default": default, "help": f.metadata.get("help", "")}
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is list:
            kw["type"] = _comma_list
            kw["metavar"] = "A,B,..."
        else:
            kw["type"] = tp
        if default not in (None, False) and "action" not in kw:
            kw["help"] += f" (default: {','.join(default) if isinstance(default, list) else default})"
        parser.add_argument(flag, **kw)


def _comma_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def from_namespace(cls, ns: argparse.Namespace, **overrides):
    """Build dataclass `cls` from the parsed options that match its fields."""
    values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if hasattr(ns, f.name)}
    values.update(overrides)
    return cls(**values)
