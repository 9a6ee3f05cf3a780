"""The `kws` command. Each subcommand builds the stage's config dataclass and calls kwslib; a user mistake
prints one line (`kws: error: ...`) and exits 2, never a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from kwslib.config import (
    AugmentConfig,
    DataConfig,
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
