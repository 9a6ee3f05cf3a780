"""Label protocols: which words are classes, and what every other word becomes.

- `sc12`: the standard Speech Commands benchmark: 10 keywords + `_silence_` + `_unknown_`.
- `sc35`: all 35 Speech Commands v0.02 words + `_silence_` (there is no unknown word left to learn).
- `custom`: the user's keywords + `_silence_` + `_unknown_`.
Any word outside the keywords maps to `_unknown_` (or is dropped when the protocol has no `_unknown_`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SILENCE = "_silence_"
UNKNOWN = "_unknown_"
BACKGROUND_NOISE_DIR = "_background_noise_"

SC12_KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# In the order of the hub dataset's ClassLabel for v0.02.
SC35_WORDS = SC12_KEYWORDS + (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "backward", "forward", "follow", "learn", "visual",
)  # fmt: skip
PROTOCOLS = ("sc12", "sc35", "custom")


@dataclass(frozen=True)
class LabelSet:
    """The classes of one protocol, in model output order: keywords, then `_silence_`, then `_unknown_`."""

    protocol: str
    keywords: tuple[str, ...]
    silence: bool = True
    unknown: bool = True

    def __post_init__(self):
        if not self.keywords:
            raise ValueError(f"protocol {self.protocol!r} has no keywords; give at least one word")
        dupes = sorted({w for w in self.keywords if self.keywords.count(w) > 1})
        if dupes:
            raise ValueError(f"keywords repeat {dupes}; give each word once")
        reserved = {SILENCE, UNKNOWN} & set(self.keywords)
        if reserved:
            raise ValueError(f"{sorted(reserved)} are reserved class names, not keywords; remove them from --words")

    @property
    def labels(self) -> tuple[str, ...]:
        return self.keywords + ((SILENCE,) if self.silence else ()) + ((UNKNOWN,) if self.unknown else ())

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def __len__(self) -> int:
        return len(self.labels)

    def label_of(self, word: str) -> str | None:
        """The class a spoken `word` belongs to: itself, `_unknown_`, or None if the protocol drops it."""
        if word in self.keywords or (word == SILENCE and self.silence):
            return word
        if word == SILENCE:
            return None
        return UNKNOWN if self.unknown else None

    def id_of(self, word: str) -> int | None:
        label = self.label_of(word)
        return None if label is None else self.label2id[label]

    def to_dict(self) -> dict:
        return {"protocol": self.protocol, "labels": list(self.labels), "keywords": list(self.keywords)}

    @classmethod
    def from_dict(cls, data: dict) -> LabelSet:
        labels = data["labels"]
        return cls(data["protocol"], tuple(data["keywords"]), SILENCE in labels, UNKNOWN in labels)


def label_set(
    protocol: str, words: Iterable[str] | None = None, *, silence: bool = True, unknown: bool = True
) -> LabelSet:
    """The LabelSet of `protocol`; `words` are the keywords of `custom` (and must be absent otherwise)."""
    protocol = protocol.lower()
    if protocol == "sc12":
        _no_words(protocol, words)
        return LabelSet("sc12", SC12_KEYWORDS, silence=True, unknown=True)
    if protocol == "sc35":
        _no_words(protocol, words)
        return LabelSet("sc35", SC35_WORDS, silence=True, unknown=False)
    if protocol == "custom":
        if words is None:
            raise ValueError("protocol 'custom' needs its keywords: pass --words a,b,c (or a folder of <word>/ dirs)")
        keywords = tuple(w.strip().lower() for w in words if w.strip())
        return LabelSet("custom", keywords, silence=silence, unknown=unknown)
    raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")


def _no_words(protocol: str, words) -> None:
    if words:
        raise ValueError(f"--words is for the custom protocol; {protocol} has fixed keywords (use --protocol custom)")
