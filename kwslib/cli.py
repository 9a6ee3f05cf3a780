"""The `kws` command. Each subcommand builds the stage's config dataclass and calls kwslib; a user mistake
prints one line (`kws: error: ...`) and exits 2, never a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from kwslib.config import (
    AugmentConfig,
    DataConfig,
    EvalConfig,
    SynthConfig,
    TrainConfig,
    add_dataclass_arguments,
    from_namespace,
)

EXIT_USAGE = 2


def _synth(args: argparse.Namespace) -> int:
    from kwslib.data.synth import synthesize

    cfg = from_namespace(SynthConfig, args)
    summary = synthesize(cfg, progress=not args.quiet)
    data = summary.to_dict()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(
            f"wrote {data['clips_written']} clips to {cfg.out} in {data['seconds']:.1f} s "
            f"({data['clips_per_second']:.1f} clips/s)"
        )
        for key, value in data.items():
            if key not in ("clips_written", "seconds", "clips_per_second"):
                print(f"  {key}: {value}")
        print(f"next: kws data-info {cfg.out} --protocol sc12")
    return 0


def _data_info(args: argparse.Namespace) -> int:
    from kwslib.data import load_data
    from kwslib.data.dataset import summarize

    cfg = from_namespace(DataConfig, args)
    summary = summarize(load_data(cfg))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(format_summary(summary, source=cfg.source, protocol=cfg.protocol))
    return 0


def _train(args: argparse.Namespace) -> int:
    from kwslib.train import train

    data_cfg = from_namespace(DataConfig, args, source=args.data)
    train_cfg = from_namespace(TrainConfig, args)
    augment_cfg = from_namespace(AugmentConfig, args, enabled=args.augment)
    result = train(data_cfg, train_cfg, augment_cfg, progress=not args.quiet)
    if args.json:
        print(json.dumps(result.metrics, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from kwslib.evaluation import data_config_for, evaluate
    from kwslib.inference import Classifier
    from kwslib.model_card import write_model_card

    eval_cfg = from_namespace(EvalConfig, args)
    data_overrides = {k: getattr(args, k) for k in ("clip_seconds", "silence_percentage", "unknown_percentage", "seed")}
    meta = Classifier.load(eval_cfg.model).meta
    data_cfg = data_config_for(meta, args.data, args.protocol, **data_overrides)
    result = evaluate(eval_cfg, data_cfg, progress=not args.quiet)
    m = result.metrics
    clean = m[eval_cfg.split]
    print(
        f"kws evaluate: {eval_cfg.split} accuracy {clean['accuracy']:.4f}, macro F1 {clean['f1_macro']:.4f}, "
        f"ECE {clean['calibration']['ece']:.3f} over {clean['clips']} clips"
    )
    for c in m["evaluation"]["conditions"]:
        if c["name"] in ("babble@0dB", "white@0dB") or c["kind"] == "device":
            print(f"  {c['name']:<20} accuracy {c['accuracy']:.4f}")
    rt = m["evaluation"]["runtime"]
    print(f"  scored {rt['clips']} clips in {rt['seconds']:.1f} s ({rt['clips_per_second']:.0f} clips/s)")
    print(f"  metrics: {result.metrics_path}")
    if result.report_path:
        print(f"  report:  {result.report_path}")
    if Path(eval_cfg.model).is_dir():
        print(f"  model card: {write_model_card(eval_cfg.model, m)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from kwslib.report import render_report_files

    path = render_report_files(args.metrics, args.out)
    print(f"kws report: {path}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from kwslib.model_card import push

    url = push(args.model, args.repo_id, private=args.private, token=args.token)
    print(f"kws push: {url}")
    return 0


def format_summary(summary: dict, *, source: str, protocol: str) -> str:
    """The data-info table: clips per label and split, speakers, durations."""
    splits = list(summary["splits"])
    width = max(len(label) for label in summary["labels"]) + 2
    lines = [f"{source}  (protocol {protocol}, {len(summary['labels'])} classes)", ""]
    lines.append("label".ljust(width) + "".join(s.rjust(12) for s in splits))
    for label in summary["labels"]:
        lines.append(
            label.ljust(width) + "".join(str(summary["splits"][s]["per_label"][label]).rjust(12) for s in splits)
        )
    lines.append("-" * (width + 12 * len(splits)))
    rows = [
        ("clips", lambda s: s["clips"]),
        ("speakers", lambda s: s["speakers"]),
        ("clips/speaker", lambda s: f"{s['clips_per_speaker_median']:.0f}"),
        ("hours", lambda s: f"{s['seconds']['total'] / 3600:.2f}"),
        ("sec min", lambda s: f"{s['seconds']['min']:.2f}"),
        ("sec mean", lambda s: f"{s['seconds']['mean']:.2f}"),
        ("sec max", lambda s: f"{s['seconds']['max']:.2f}"),
    ]
    for name, get in rows:
        lines.append(name.ljust(width) + "".join(str(get(summary["splits"][s])).rjust(12) for s in splits))
    shared = summary["speakers_in_several_splits"]
    lines.append("")
    lines.append(f"speakers in more than one split: {len(shared)}" + (f" (e.g. {shared[:5]})" if shared else ""))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kws", description="Keyword spotting on the Hugging Face stack.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "synth",
        help="make a synthetic Speech Commands dataset with TTS engines (offline)",
        description="Speak words with espeak-ng, flite and festival voices into the official Speech Commands "
        "layout, with voice-disjoint validation/test lists and generated background noise.",
    )
    add_dataclass_arguments(p, SynthConfig)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_synth)

    p = sub.add_parser(
        "data-info",
        help="counts per split, label and speaker; durations",
        description="Load a dataset the way training will and summarise it.",
    )
    p.add_argument("source", metavar="DIR|HUB_ID", help=DataConfig.__dataclass_fields__["source"].metadata["help"])
    add_dataclass_arguments(p, DataConfig, skip=("source",))
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_data_info)

    p = sub.add_parser(
        "train",
        help="train or fine-tune a keyword classifier (accelerate; CPU, GPU, multi-GPU)",
        description="Train on a dataset with per-epoch augmentation, validation every epoch, early stopping, "
        "resumable checkpoints. Writes <out>/model/, <out>/train_log.jsonl and <out>/metrics.json.",
    )
    p.add_argument("--data", default=DataConfig.source, help=DataConfig.__dataclass_fields__["source"].metadata["help"])
    data = p.add_argument_group("data")
    add_dataclass_arguments(data, DataConfig, skip=("source", "seed"))
    add_dataclass_arguments(p.add_argument_group("training"), TrainConfig)
    add_dataclass_arguments(p.add_argument_group("augmentation"), AugmentConfig, skip=("enabled",))
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True, help="augment training clips")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "evaluate",
        help="score a model by keyword, noise and device; write metrics.json and report.html",
        description="Score a checkpoint folder or .onnx model on a split under clean, noise x SNR, device and level "
        "conditions. Writes <out>/metrics.json, <out>/mistakes/*.wav and <out>/report.html, and the checkpoint's "
        "model card (README.md).",
    )
    p.add_argument("--data", default=DataConfig.source, help=DataConfig.__dataclass_fields__["source"].metadata["help"])
    p.add_argument("--protocol", default=None, help="label protocol of --data (default: the model's)")
    data = p.add_argument_group("data")
    add_dataclass_arguments(
        data, DataConfig, skip=("source", "protocol", "words", "validation_percentage", "testing_percentage",
                                "audio_column", "label_column", "speaker_column", "dataset_config", "revision")
    )  # fmt: skip
    add_dataclass_arguments(p.add_argument_group("evaluation"), EvalConfig, skip=("seed",))
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "report",
        help="render metrics.json files as one self-contained HTML report (two or more: side by side)",
        description="Re-render the HTML report from metrics.json; with several files, compare the runs.",
    )
    p.add_argument("metrics", nargs="+", metavar="METRICS.json", help="metrics.json files (or run folders)")
    p.add_argument("--out", required=True, metavar="FILE.html", help="where to write the report")
    p.set_defaults(func=_report)

    p = sub.add_parser(
        "push",
        help="upload a checkpoint folder with its model card to the Hugging Face hub",
        description="Create (if needed) and upload to a hub model repository. Needs `huggingface-cli login` or --token.",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="checkpoint folder, e.g. runs/demo/model")
    p.add_argument("--repo-id", required=True, metavar="OWNER/NAME", help="hub model repository")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--token", default=None, help="hub token (default: the logged-in one)")
    p.set_defaults(func=_push)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="kws: %(message)s")
    if not args.verbose:
        # The hub client logs every retry; the one-line error below says what matters.
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, PermissionError) as err:
        # ValueError covers AudioError, DataSourceError and config validation: a user mistake, one line.
        if args.verbose:
            raise
        print(f"kws: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("kws: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
