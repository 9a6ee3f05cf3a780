"""The Hugging Face model card of a checkpoint folder (`README.md`) and `kws push` to the hub.

The card's front matter is built with huggingface_hub's `ModelCardData` (so the hub parses it): library,
pipeline tag, license, datasets, base model, and `model-index` results taken from metrics.json. The body says
how to use the model with `transformers.pipeline`, what it was trained on, how it holds up under noise and
devices, and its limitations.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from kwslib.labels import SILENCE, UNKNOWN

CARD_FILE = "README.md"
LICENSE = "apache-2.0"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_BUILTIN_BASES = {"compact": None, "wav2vec2-tiny": None, "wav2vec2-base-random": None}


class PushError(ValueError):
    """`kws push` could not upload. The message is one line and says what to do."""


def _dataset_id(source: str | None) -> str | None:
    if not source:
        return None
    if source.rstrip("/") in ("google/speech_commands", "speech_commands"):
        return "google/speech_commands"
    return source if _HUB_ID.match(source) and not Path(source).exists() else None


def card_data(metrics: dict, meta: dict, name: str):
    """`ModelCardData` for a checkpoint: front matter with model-index results from `metrics`."""
    from huggingface_hub import EvalResult, ModelCardData

    context = metrics.get("context") or {}
    source = context.get("data") or metrics.get("data") or (meta.get("data") or {}).get("source")
    dataset_id = _dataset_id(source)
    base = (meta.get("train") or {}).get("model") or metrics.get("model")
    base_model = base if base and base not in _BUILTIN_BASES and _HUB_ID.match(base) else None
    results = []
    split = (metrics.get("evaluation") or {}).get("split", "test")
    scores = metrics.get(split) or {}
    dataset_kw = {
        "dataset_type": dataset_id or "local",
        "dataset_name": dataset_id or f"{Path(source).name if source else 'local'} (local folder)",
        "dataset_split": split,
    }
    if dataset_id == "google/speech_commands":
        dataset_kw["dataset_config"] = "v0.02"
    for key, metric_type, metric_name, args in (
        ("accuracy", "accuracy", f"{split.capitalize()} accuracy", None),
        ("f1_macro", "f1", "Macro F1", {"average": "macro"}),
        ("f1_weighted", "f1", "Weighted F1", {"average": "weighted"}),
    ):
        if key in scores:
            results.append(
                EvalResult(
                    task_type="audio-classification",
                    task_name="Keyword spotting",
                    metric_type=metric_type,
                    metric_value=round(float(scores[key]), 4),
                    metric_name=metric_name,
                    metric_args=args,
                    **dataset_kw,
                )
            )
    return ModelCardData(
        library_name="transformers",
        pipeline_tag="audio-classification",
        license=LICENSE,
        # The hub reads `datasets` as dataset ids; a local or synthetic source has none, the body describes it.
        datasets=[dataset_id] if dataset_id else [],
        base_model=base_model,
        model_name=name,
        tags=["keyword-spotting", "speech-commands", "kwslib"],
        eval_results=results or None,
    )


def _pct(value) -> str:
    return f"{100 * float(value):.1f} %" if value is not None else "n/a"


def model_card(metrics: dict, meta: dict, *, name: str = "kws model") -> str:
    """The full README.md text (front matter + body) for a checkpoint."""
    data = card_data(metrics, meta, name)
    labels = metrics.get("labels") or (meta.get("labels") or {}).get("labels") or []
    keywords = [x for x in labels if x not in (SILENCE, UNKNOWN)]
    context = metrics.get("context") or {}
    evaluation = metrics.get("evaluation") or {}
    split = evaluation.get("split", "test")
    scores = metrics.get(split) or {}
    conditions = {c["name"]: c for c in evaluation.get("conditions", [])}
    model_name = context.get("model_name") or (meta.get("train") or {}).get("model") or "unknown"
    source = context.get("data") or metrics.get("data") or "unknown"
    lines = [
        f"# {name}",
        "",
        f"A keyword-spotting classifier trained with kws (`kwslib` {context.get('kwslib', '')}). "
        f"It labels a 1 s, 16 kHz clip as one of {len(labels)} classes: {', '.join(f'`{k}`' for k in keywords)}"
        + (", `_silence_`" if SILENCE in labels else "")
        + (" and `_unknown_` (any other word)" if UNKNOWN in labels else "")
        + ".",
        "",
        "## Usage",
        "",
        "```python",
        "import kwslib  # registers kwslib's architectures (e.g. the compact CNN) with transformers",
        "from transformers import pipeline",
        "",
        'clf = pipeline("audio-classification", model="PATH_OR_REPO_ID")',
        'audio = kwslib.load_audio("clip.wav")  # any format/rate/channels -> 16 kHz mono float32',
        'print(clf({"raw": audio, "sampling_rate": 16000}, top_k=3))',
        "```",
        "",
        "or with kwslib's `Classifier`, which also scores long files in sliding windows:",
        "",
        "```python",
        "from kwslib.inference import Classifier",
        'print(Classifier.load("PATH").predict("long.wav").to_dict())',
        "```",
        "",
        "## Training",
        "",
        f"- architecture: `{model_name}` ({context.get('model_type') or 'transformers'}"
        + (f", {context['parameters']:,} parameters" if context.get("parameters") else "")
        + ")",
        f"- data: `{source}`, protocol `{context.get('protocol') or metrics.get('protocol') or meta.get('protocol')}`",
    ]
    train = metrics.get("train") or {}
    if train:
        lines.append(f"- {train.get('epochs')} epochs, {train.get('steps')} steps, {train.get('seconds')} s")
    lines += ["", f"## Results ({split} split)", ""]
    if scores:
        lines += [
            "| metric | value |",
            "|---|---|",
            f"| accuracy | {_pct(scores.get('accuracy'))} |",
            f"| balanced accuracy | {_pct(scores.get('balanced_accuracy'))} |",
            f"| macro F1 | {_pct(scores.get('f1_macro'))} |",
            f"| weighted F1 | {_pct(scores.get('f1_weighted'))} |",
        ]
        if "calibration" in scores:
            lines.append(f"| expected calibration error | {scores['calibration']['ece']:.3f} |")
    if conditions:
        lines += [
            "",
            "Accuracy under evaluation conditions (`kws evaluate`):",
            "",
            "| condition | accuracy |",
            "|---|---|",
        ]
        for cname in ("clean", "babble@0dB", "white@0dB", "background@0dB", "device:telephone", "device:far_field",
                      "device:lossy_codec", "level:-30dB"):  # fmt: skip
            if cname in conditions:
                lines.append(f"| {cname} | {_pct(conditions[cname]['accuracy'])} |")
    lines += [
        "",
        "## Limitations",
        "",
        "- Trained for 1 s clips of isolated words at 16 kHz; in continuous audio use a streaming detector with "
        "smoothing and a refractory period rather than clip-by-clip decisions.",
        "- Words outside the keyword list are only rejected as well as `_unknown_` was represented in training; "
        "expect false accepts on similar-sounding words.",
    ]
    if not _dataset_id(source):
        lines.append(
            "- Trained on a local dataset (possibly synthetic text-to-speech voices from `kws synth`): accuracy on "
            "real speakers, accents, microphones and rooms can be markedly lower. Evaluate on your own recordings "
            "before relying on it."
        )
    lines.append("- Noise and device robustness is measured on simulated conditions, not field recordings.")
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"


def write_model_card(model_dir: str | os.PathLike, metrics: dict, *, name: str | None = None) -> Path:
    """Write `<model_dir>/README.md` from `metrics` and the folder's kws.json, atomically."""
    import json

    folder = Path(model_dir)
    meta_path = folder / "kws.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    text = model_card(metrics, meta, name=name or folder.resolve().parent.name or "kws model")
    path = folder / CARD_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def push(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload kws keyword-spotting model",
    api=None,
) -> str:
    """Upload a checkpoint folder (with its model card) to the hub; returns the commit URL.

    `api` is a `huggingface_hub.HfApi` (a stand-in in tests). Fails with PushError, one line, when the folder is
    not a checkpoint, the id is malformed or the hub cannot be reached.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise PushError(f"--model {model_dir} is not a checkpoint folder (no config.json); pass e.g. runs/demo/model")
    if not _HUB_ID.match(repo_id):
        raise PushError(f"--repo-id {repo_id!r} is not a hub id; use OWNER/NAME, e.g. my-user/kws-compact-sc12")
    if not (folder / CARD_FILE).is_file():
        metrics = {}
        meta_path = folder / "kws.json"
        if meta_path.is_file():
            import json

            metrics = json.loads(meta_path.read_text()).get("metrics") or {}
        write_model_card(folder, metrics)
    api = api or HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            commit_message=commit_message,
            ignore_patterns=[".*", "*.tmp"],
        )
    except OfflineModeIsEnabled as err:
        raise PushError(f"cannot push to {repo_id}: the hub is offline (HF_HUB_OFFLINE=1); unset it and retry") from err
    except (HfHubHTTPError, OSError) as err:
        msg = " ".join(str(err).split())[:160]
        raise PushError(f"cannot push to {repo_id} ({msg}); check the network and `huggingface-cli login`") from err
    return str(getattr(info, "commit_url", info))
