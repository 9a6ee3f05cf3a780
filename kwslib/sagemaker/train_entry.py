"""The SageMaker training entry point: `kws train` inside the Hugging Face training container.

`kws sagemaker train` uploads a source folder with this file at its root (as `train_entry.py`), a copy of `kwslib`
beside it and a `requirements.txt` that the container pip-installs. The training toolkit runs

    python train_entry.py --epochs 30 --resume True --words yes,no ...      (or torchrun ... with torch_distributed)

with one `--<key> <value>` pair per hyperparameter, keys in the form they were given and values rendered with
`str()`: booleans arrive as `True`/`False`, lists must be sent as comma strings. So the parser here takes every
`kws train` option both as `--max_steps` and `--max-steps`, booleans as `--flag True|False` (and `--flag`,
`--no-flag`), and ignores `--sagemaker_*` pairs that a toolkit may pass through.

Data: the `train` channel (`SM_CHANNEL_TRAIN`, a Speech Commands folder synced from S3) if there is one, else
`--data` (a hub dataset id). The run folder is `--run_dir`; with a checkpoint S3 URI the launcher sets it to
`/opt/ml/checkpoints`, which SageMaker syncs to S3 and restores when a spot job restarts. The whole run folder lives
there, not only `checkpoints/`: the final step reloads `best_model/` and a restarted job must find it. Training
always runs with `--resume`, so a restarted job picks up from the newest complete checkpoint (a checkpoint whose
files were only partly uploaded before the interruption is removed first).

When training ends, rank 0 writes the deployable model to `SM_MODEL_DIR` (/opt/ml/model, which SageMaker tars
into model.tar.gz): the checkpoint files at its root, `model.onnx` (exported and checked against PyTorch), and
`code/` with the serving handler, its requirements and `kwslib`. metrics.json and train_log.jsonl go to
`SM_OUTPUT_DATA_DIR` (output.tar.gz).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import typing
from pathlib import Path

from kwslib.config import AugmentConfig, DataConfig, TrainConfig, _unwrap_optional

TRAIN_CHANNEL_ENV = "SM_CHANNEL_TRAIN"
MODEL_DIR_ENV = "SM_MODEL_DIR"
OUTPUT_DATA_DIR_ENV = "SM_OUTPUT_DATA_DIR"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
DEFAULT_RUN_DIR = "/opt/ml/kws-run"  # on the instance's volume, not uploaded: used when no checkpoint URI is set
SAGEMAKER_PREFIX = "--sagemaker_"  # toolkit-reserved hyperparameters (sagemaker_program, ..._enabled, ...)
# Set by this entry point itself (the run folder, --resume) or by the launcher (the data source).
RESERVED_FIELDS = ("source", "out", "resume", "enabled")
TRUE, FALSE = ("true", "1", "yes", "y", "on"), ("false", "0", "no", "n", "off")
# A complete accelerate checkpoint has these besides kws_trainer_state.json; S3 sync order is not guaranteed.
CHECKPOINT_FILES = ("optimizer.bin", "scheduler.bin")
CHECKPOINT_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def str_to_bool(text: str) -> bool:
    """`True`/`False` as the SageMaker toolkit renders booleans (and the usual spellings)."""
    value = str(text).strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def _comma_list(text: str) -> list[str]:
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


class _RaisingParser(argparse.ArgumentParser):
    """Raises ValueError instead of printing usage and exiting: the launcher reports it as one line."""

    def error(self, message: str):
        raise ValueError(message)


def build_parser(*, given_only: bool = False, raise_errors: bool = False) -> argparse.ArgumentParser:
    """Every `kws train` option, SageMaker-style. `given_only`: no defaults, so the namespace holds only what was
    passed (the launcher turns that into hyperparameters). `raise_errors`: ValueError instead of exit 2."""
    parser = (_RaisingParser if raise_errors else argparse.ArgumentParser)(
        prog="train_entry.py",
        description="kws train on SageMaker: options as `kws train`, also as --snake_case and --flag True|False.",
        argument_default=argparse.SUPPRESS if given_only else None,
        allow_abbrev=False,  # a hyperparameter key must name its option exactly: --out must not mean --output_data_dir
    )

    def add(name: str, tp, default, help_text: str) -> None:
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        kw: dict = {"dest": name, "help": help_text}
        if not given_only:
            kw["default"] = default
        if tp is bool:
            kw.update(type=str_to_bool, nargs="?", const=True, metavar="True|False")
        elif typing.get_origin(tp) is list:
            kw.update(type=_comma_list, metavar="A,B,...")
        else:
            kw["type"] = tp
        parser.add_argument(*flags, **kw)
        if tp is bool:  # `kws train` spelling: --no-augment
            negative = [f"--no-{name.replace('_', '-')}"] + ([f"--no_{name}"] if "_" in name else [])
            parser.add_argument(
                *negative, dest=name, action="store_false", default=argparse.SUPPRESS, help=argparse.SUPPRESS
            )

    add("data", str, None, "hub dataset id when there is no 'train' channel (SM_CHANNEL_TRAIN)")
    add("run_dir", str, None, f"run folder (default: {DEFAULT_RUN_DIR}; {CHECKPOINT_LOCAL_PATH} for spot resume)")
    add("model_dir", str, None, "where the deployable model goes (default: $SM_MODEL_DIR)")
    add("output_data_dir", str, None, "where metrics.json goes (default: $SM_OUTPUT_DATA_DIR)")
    add("export_onnx", bool, True, "also write model.onnx (served without transformers) into the model folder")
    add("augment", bool, True, "augment training clips")
    seen = {"data", "run_dir", "model_dir", "output_data_dir", "export_onnx", "augment"}
    for cls in (DataConfig, TrainConfig, AugmentConfig):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in RESERVED_FIELDS or f.name in seen:
                continue  # DataConfig and TrainConfig share `seed`: one option sets both, as in `kws train`
            seen.add(f.name)
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            add(f.name, _unwrap_optional(hints[f.name]), default, f.metadata.get("help", ""))
    return parser


def parse_args(argv: list[str], *, given_only: bool = False, raise_errors: bool = False) -> argparse.Namespace:
    """Parse the toolkit's argv; `--sagemaker_*` pairs are skipped, anything else unknown is an error."""
    parser = build_parser(given_only=given_only, raise_errors=raise_errors)
    args, unknown = parser.parse_known_args(argv)
    rest, i = [], 0
    while i < len(unknown):
        if unknown[i].startswith(SAGEMAKER_PREFIX):
            i += 1 if "=" in unknown[i] else 2
            continue
        rest.append(unknown[i])
        i += 1
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)} (run `kws train --help` for the options)")
    return args


def configs(args: argparse.Namespace, data: str, run_dir: str) -> tuple[DataConfig, TrainConfig, AugmentConfig]:
    """The three stage configs from parsed options (their __post_init__ validates the values)."""
    from kwslib.config import from_namespace

    return (
        from_namespace(DataConfig, args, source=data),
        from_namespace(TrainConfig, args, out=run_dir, resume=True),
        from_namespace(AugmentConfig, args, enabled=args.augment),
    )


def prune_incomplete_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Remove checkpoints restored from S3 without all their files (an upload cut off by a spot interruption)."""
    from kwslib.train import CHECKPOINTS, STATE_FILE

    removed = []
    for ckpt in sorted(Path(run_dir, CHECKPOINTS).glob("step-*")):
        try:
            names = {p.name for p in ckpt.iterdir()}
        except FileNotFoundError:  # another process of this job removed it first
            continue
        complete = STATE_FILE in names and all(n in names for n in CHECKPOINT_FILES)
        if not (complete and any(n in names for n in CHECKPOINT_WEIGHTS)):
            shutil.rmtree(ckpt, ignore_errors=True)
            removed.append(ckpt)
    return removed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    channel = os.environ.get(TRAIN_CHANNEL_ENV)
    data = channel or args.data
    if not data:
        raise SystemExit(f"train_entry.py: no data: give the job a 'train' channel ({TRAIN_CHANNEL_ENV}) or --data")
    run_dir = args.run_dir or DEFAULT_RUN_DIR
    model_dir = Path(args.model_dir or os.environ.get(MODEL_DIR_ENV, "/opt/ml/model"))
    output_dir = Path(args.output_data_dir or os.environ.get(OUTPUT_DATA_DIR_ENV, "/opt/ml/output/data"))
    data_cfg, train_cfg, augment_cfg = configs(args, data, run_dir)
    rank = int(os.environ.get("RANK", "0"))
    # Every process prunes (the same folders, idempotently) before train() looks for the newest checkpoint, so no
    # process can pick one that another is about to delete.
    for ckpt in prune_incomplete_checkpoints(run_dir) if Path(run_dir).is_dir() else []:
        if rank == 0:
            print(f"kws: removed incomplete checkpoint {ckpt.name} (cut off before it was fully saved)")

    from kwslib.train import LOG_FILE, METRICS_FILE, train

    result = train(data_cfg, train_cfg, augment_cfg, progress=True)
    if rank != 0:
        return 0
    from kwslib.sagemaker.launch import stage_model

    stage_model(result.model_dir, model_dir, onnx=args.export_onnx, strict=False)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in (METRICS_FILE, LOG_FILE):
        if (result.out / name).exists():
            shutil.copy2(result.out / name, output_dir / name)
    print(f"kws: model for deployment in {model_dir}: {', '.join(sorted(p.name for p in model_dir.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
