"""kwslib: keyword spotting on the Hugging Face stack.

The public API. Heavy modules (datasets, torch) load on first use, so `import kwslib` and `kws --help` stay fast.
"""

from __future__ import annotations

import importlib

from kwslib.audio import AudioError, load_audio
from kwslib.config import DataConfig, SynthConfig
from kwslib.labels import SILENCE, UNKNOWN, LabelSet, label_set

__version__ = "0.1.0"

_LAZY = {
    "load_data": "kwslib.data",
    "labels_of": "kwslib.data",
    "DataSourceError": "kwslib.data",
    "synthesize": "kwslib.data.synth",
}

__all__ = [
    "SILENCE",
    "UNKNOWN",
    "AudioError",
    "DataConfig",
    "LabelSet",
    "SynthConfig",
    "label_set",
    "load_audio",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kwslib' has no attribute {name!r}")
