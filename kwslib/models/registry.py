"""Registration of kwslib's model types (compact, embedding) with transformers' Auto classes.

Imports nothing at module level: `compact` and `embedding` call it from their `register()`, which `import kwslib`
may run from inside transformers' own import (see compact.py).
"""

from __future__ import annotations

_registered: set[type] = set()


def register_auto(model_type: str, config_class: type, model_class: type, feature_extractor_class: type) -> None:
    """Make `model_type` known to AutoConfig, AutoModelForAudioClassification and AutoFeatureExtractor (idempotent
    per config class: a reloaded module's new classes register again, under the same name)."""
    if config_class in _registered:
        return
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

    AutoConfig.register(model_type, config_class, exist_ok=True)
    AutoModelForAudioClassification.register(config_class, model_class, exist_ok=True)
    AutoFeatureExtractor.register(config_class, feature_extractor_class, exist_ok=True)
    _registered.add(config_class)
