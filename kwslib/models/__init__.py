"""Models: `build_model` makes a fresh classifier for a label set, `load_model` reads a trained checkpoint folder.

Built-in names work offline: `compact` (the small BC-ResNet of `kwslib.models.compact`), `wav2vec2-tiny` (a
random-weight wav2vec2 small enough for tests) and `wav2vec2-base-random` (wav2vec2-base's architecture with random
weights, for speed benchmarks). `embedding` (`kwslib.models.embedding`: Google's pretrained speech_embedding front end
plus a small head) downloads its front end once (`frontend_files()`), then works offline too. Anything else is a hub
id or a local checkpoint folder, loaded through the Auto classes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import huggingface_hub
import torch
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    PretrainedConfig,
    PreTrainedModel,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
)
from transformers.feature_extraction_utils import FeatureExtractionMixin

from kwslib.config import SAMPLE_RATE
from kwslib.labels import LabelSet

# Importing compact registers kws-compact with the Auto classes, so load_model and pipeline() find it.
from kwslib.models.compact import CompactConfig, CompactFeatureExtractor, CompactForAudioClassification
from kwslib.models.embedding import EmbeddingConfig, EmbeddingForAudioClassification

__all__ = [
    "BUILTIN_MODELS",
    "CompactConfig",
    "CompactFeatureExtractor",
    "CompactForAudioClassification",
    "EmbeddingConfig",
    "EmbeddingForAudioClassification",
    "ModelSourceError",
    "WaveformClassifier",
    "build_model",
    "load_model",
]

BUILTIN_MODELS = ("compact", "embedding", "wav2vec2-tiny", "wav2vec2-base-random")
META_FILE = "kws.json"
# Config fields that hold a dropout probability in transformers' audio models (wav2vec2, HuBERT, WavLM, AST, Whisper,
# kws-compact); `build_model(dropout=...)` sets those a config has. Feature-projection and layer drop stay as shipped.
DROPOUT_FIELDS = (
    "hidden_dropout",
    "attention_dropout",
    "activation_dropout",
    "final_dropout",
    "classifier_dropout",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "dropout",
)
NORMALIZE_EPS = 1e-7  # Wav2Vec2FeatureExtractor's variance floor, so the in-graph normalisation matches it
_OFFLINE_FIX = "to work offline use --model compact or wav2vec2-tiny, or pass a local checkpoint folder"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelSourceError(ValueError):
    """A model that cannot be loaded: unknown name, missing folder, unreachable hub. The message is one line."""


def build_model(
    name_or_path: str,
    labels: LabelSet,
    *,
    dropout: float = 0.1,
    freeze_feature_encoder: bool = True,
    from_scratch: bool = False,
    spec_augment: bool = True,
) -> tuple[PreTrainedModel, FeatureExtractionMixin]:
    """A classifier for `labels` and its feature extractor, ready to train.

    `name_or_path` is a built-in name (`BUILTIN_MODELS`), a hub id or a local checkpoint folder; the latter two get
    a new classification head when their labels differ. `from_scratch` keeps their architecture but not their weights.
    `spec_augment` switches the model's own training-time masking (compact's SpecAugment, wav2vec2's
    `apply_spec_augment`). `freeze_feature_encoder` applies to models that have one (wav2vec2 and kin), including
    the random-weight built-ins, so that they cost what fine-tuning their pretrained counterpart costs, and to
    `embedding`'s speech_embedding front end (frozen: only the head trains).
    """
    if name_or_path == "compact":
        model = CompactForAudioClassification(_configure(CompactConfig(), labels, dropout, spec_augment))
        feature_extractor = CompactFeatureExtractor()
    elif name_or_path == "embedding":
        config = EmbeddingConfig(freeze_frontend=freeze_feature_encoder)
        model = EmbeddingForAudioClassification(_configure(config, labels, dropout, spec_augment))
        model.load_frontend()  # FrontendUnavailableError (one line, with the fix) when it cannot be downloaded
        feature_extractor = CompactFeatureExtractor()
    elif name_or_path in ("wav2vec2-tiny", "wav2vec2-base-random"):
        config = _tiny_wav2vec2_config() if name_or_path == "wav2vec2-tiny" else Wav2Vec2Config()
        model = AutoModelForAudioClassification.from_config(_configure(config, labels, dropout, spec_augment))
        feature_extractor = wav2vec2_feature_extractor()
    else:
        source = _resolve_source(name_or_path)
        with _load_errors(name_or_path, source):
            config = _configure(AutoConfig.from_pretrained(source), labels, dropout, spec_augment)
            if from_scratch:
                model = AutoModelForAudioClassification.from_config(config)
            else:
                # A checkpoint trained on other labels gets a fresh head instead of a shape error.
                model = AutoModelForAudioClassification.from_pretrained(
                    source, config=config, ignore_mismatched_sizes=True
                )
            feature_extractor = AutoFeatureExtractor.from_pretrained(source)
    if freeze_feature_encoder and hasattr(model, "freeze_feature_encoder"):
        model.freeze_feature_encoder()
    return model, feature_extractor


def load_model(path: str | os.PathLike) -> tuple[PreTrainedModel, FeatureExtractionMixin, dict]:
    """A trained checkpoint folder -> (model in eval mode, feature extractor, contents of its kws.json or {})."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ModelSourceError(
            f"checkpoint folder {path} does not exist; pass the model/ folder of a run, e.g. runs/demo/model"
        )
    if not (folder / "config.json").is_file():
        raise ModelSourceError(
            f"{path} has no config.json, so it is not a checkpoint; pass a folder written by save_pretrained, "
            "e.g. runs/demo/model"
        )
    with _load_errors(str(path), str(folder)):
        model = AutoModelForAudioClassification.from_pretrained(folder)
        feature_extractor = AutoFeatureExtractor.from_pretrained(folder)
    meta = {}
    if (folder / META_FILE).is_file():
        try:
            meta = json.loads((folder / META_FILE).read_text())
        except json.JSONDecodeError as err:
            raise ModelSourceError(f"{folder / META_FILE} is not valid JSON ({err}); delete or repair it") from err
    return model.eval(), feature_extractor, meta


class WaveformClassifier(torch.nn.Module):
    """A transformers audio classifier as `waveform [B, T] -> (logits, probabilities)`, normalisation included.

    What `kwslib.inference.Classifier` runs on PyTorch and what `kwslib.export` writes to ONNX, so both apply the
    feature extractor's normalisation (wav2vec2's per-clip zero mean, unit variance) the same way.
    """

    def __init__(self, model: PreTrainedModel, normalize: bool):
        super().__init__()
        self.model = model
        self.normalize = normalize

    @classmethod
    def wrap(cls, model: PreTrainedModel, feature_extractor) -> WaveformClassifier:
        return cls(model.eval(), bool(getattr(feature_extractor, "do_normalize", False))).eval()

    def forward(self, input_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = input_values
        if self.normalize:
            mean = x.mean(dim=1, keepdim=True)
            var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
            x = (x - mean) / torch.sqrt(var + NORMALIZE_EPS)
        logits = self.model(input_values=x).logits
        return logits, torch.softmax(logits.float(), dim=-1)


def wav2vec2_feature_extractor() -> Wav2Vec2FeatureExtractor:
    """The feature extractor of facebook/wav2vec2-base: per-clip zero mean, unit variance, no attention mask."""
    return Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True, return_attention_mask=False
    )


def _tiny_wav2vec2_config() -> Wav2Vec2Config:
    # wav2vec2-base's seven conv layers (so 20 ms frames and the same padding arithmetic), at a width of 32.
    return Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        classifier_proj_size=32,
    )


def _configure(config: PretrainedConfig, labels: LabelSet, dropout: float, spec_augment: bool) -> PretrainedConfig:
    """Set `labels`, `dropout` (on the fields the config has) and in-model masking on `config`, in place."""
    config.id2label = labels.id2label
    config.label2id = labels.label2id
    for name in DROPOUT_FIELDS:
        if hasattr(config, name):
            setattr(config, name, dropout)
    if isinstance(config, CompactConfig):
        config.spec_augment = spec_augment
    elif hasattr(config, "apply_spec_augment"):
        config.apply_spec_augment = spec_augment
    return config


def _resolve_source(name: str) -> str:
    """A local checkpoint folder or a hub id for `name`; ModelSourceError for anything that is neither."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelSourceError(
                f"--model {name} is a folder without config.json; pass a checkpoint folder written by save_pretrained "
                "(e.g. runs/demo/model)"
            )
        return str(path)
    if path.exists():
        raise ModelSourceError(f"--model {name} is a file; pass the checkpoint folder that holds config.json")
    if _HUB_ID.match(name):
        return name
    if "/" in name or os.sep in name or name.startswith((".", "~")):
        raise ModelSourceError(
            f"--model {name}: no such folder; pass an existing checkpoint folder, a hub id such as "
            f"facebook/wav2vec2-base, or one of {', '.join(BUILTIN_MODELS)}"
        )
    raise ModelSourceError(
        f"--model {name} is not a built-in model ({', '.join(BUILTIN_MODELS)}), a hub id such as "
        "facebook/wav2vec2-base, or a local checkpoint folder"
    )


@contextlib.contextmanager
def _load_errors(name: str, source: str):
    """Turn transformers' and the hub's loading errors into a one-line ModelSourceError naming `name` and the fix."""
    try:
        yield
    except ModelSourceError:
        raise
    except OSError as err:  # missing files, no network, no such repo
        if Path(source).is_dir():
            raise ModelSourceError(
                f"could not load model {name} from its folder ({_one_line(err)}); pass a folder written by "
                "save_pretrained with both the model and its feature extractor"
            ) from err
        if huggingface_hub.is_offline_mode():
            why = "not a local folder, and the hub is offline (HF_HUB_OFFLINE=1) with no cached copy"
        else:
            why = f"not a local folder, and the hub is unreachable or has no such model ({_one_line(err)})"
        raise ModelSourceError(f"could not load model {name}: {why}; {_OFFLINE_FIX}") from err
    except ValueError as err:  # e.g. an architecture without an audio-classification head
        raise ModelSourceError(
            f"could not load model {name} for audio classification ({_one_line(err)}); use a model with an "
            f"audio-classification head such as facebook/wav2vec2-base, or one of {', '.join(BUILTIN_MODELS)}"
        ) from err


def _one_line(exc: BaseException, limit: int = 160) -> str:
    """`exc`'s message squeezed to one line of at most `limit` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
