"""kwslib: keyword spotting on the Hugging Face stack.

The public API. Heavy modules (datasets, torch) load on first use, so `import kwslib` and `kws --help` stay fast.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

from kwslib.audio import AudioError, load_audio
from kwslib.config import DataConfig, SynthConfig
from kwslib.labels import SILENCE, UNKNOWN, LabelSet, label_set

__version__ = "0.1.0"

_LAZY = {
    "load_data": "kwslib.data",
    "labels_of": "kwslib.data",
    "DataSourceError": "kwslib.data",
    "synthesize": "kwslib.data.synth",
    "Classifier": "kwslib.inference",
    "StreamingDetector": "kwslib.streaming",
    "Detection": "kwslib.streaming",
    "evaluate_stream": "kwslib.streaming",
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


def _register_with_transformers() -> None:
    """Make kwslib's architectures known to transformers' Auto classes (and so to `pipeline`)."""
    from kwslib.models.compact import register
    from kwslib.models.embedding import register as register_embedding

    register()
    register_embedding()


class _RegisterOnTransformersImport(importlib.abc.MetaPathFinder):
    """Registers kwslib's models the moment `transformers` finishes importing.

    Importing torch + transformers takes seconds; doing it in `import kwslib` would make every `kws` command slow.
    With this hook `import kwslib; from transformers import pipeline` still finds the compact model.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "transformers":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            try:
                _register_with_transformers()
            except Exception as err:  # never break `import transformers` itself
                import warnings

                warnings.warn(f"kwslib could not register its models with transformers: {err}", stacklevel=2)

        spec.loader.exec_module = exec_then_register
        return spec


if "transformers" in sys.modules:
    _register_with_transformers()
else:
    sys.meta_path.insert(0, _RegisterOnTransformersImport())


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kwslib' has no attribute {name!r}")
