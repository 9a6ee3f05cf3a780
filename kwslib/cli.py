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


def _export(args: argparse.Namespace) -> int:
    from kwslib.config import ExportConfig
    from kwslib.export import ExportError, export

    cfg = from_namespace(ExportConfig, args)
    try:
        result = export(cfg, verbose=not args.json)
    except ExportError as err:  # a graph that failed its checks: not a usage mistake, but still one line
        print(f"kws: error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print("\n".join(result.lines(parity=False)))
    return 0


PREDICT_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
PREDICT_CHUNK = 64  # files decoded and scored together; results stream out chunk by chunk


def _predict_inputs(paths: list[str]) -> list[tuple[str, str | None]]:
    """PATH arguments -> [(name, error or None)]: files as given, folders as their audio files (recursively, sorted),
    `@list.txt` as the paths it lists (one a line, relative to the current folder; blank and # lines skipped)."""
    inputs = []
    for arg in paths:
        if arg.startswith("@"):
            listing = Path(arg[1:]).expanduser()
            if not listing.is_file():
                raise ValueError(f"{arg}: no such list file; give @FILE with one audio path per line")
            lines = [line.strip() for line in listing.read_text().splitlines()]
            inputs += _predict_inputs([line for line in lines if line and not line.startswith("#")])
            continue
        path = Path(arg).expanduser()
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in PREDICT_AUDIO_SUFFIXES and not p.name.startswith(".")
            )
            if not found:
                inputs.append((arg, f"{arg}: folder has no audio files ({', '.join(PREDICT_AUDIO_SUFFIXES)})"))
            inputs += [(str(p), None) for p in found]
        else:
            inputs.append((arg, None))  # a missing or unreadable file is reported by the decoder, per input
    return inputs


def _predict(args: argparse.Namespace) -> int:
    from kwslib.audio import AudioError
    from kwslib.inference import Classifier

    if args.top_k < 1:
        raise ValueError(f"--top-k {args.top_k} must be at least 1")
    if not args.hop > 0:
        raise ValueError(f"--hop {args.hop} must be greater than 0 (seconds between windows of long inputs)")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size} must be at least 1")
    inputs = _predict_inputs(args.paths)
    if not inputs:
        raise ValueError("no inputs: give audio files, folders or @list.txt")
    if Path(args.model).is_dir():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar above the results
    clf = Classifier.load(args.model, threads=args.threads)
    rows, failed = [], 0
    if not args.json:
        print(f"{'file':<40} {'label':<12} {'score':>6}  top-{args.top_k}")
    for start in range(0, len(inputs), PREDICT_CHUNK):
        # Decode first so one unreadable file becomes its own error row instead of stopping the batch.
        chunk, good, audio = inputs[start : start + PREDICT_CHUNK], [], []
        results: list[dict] = []
        for name, error in chunk:
            if error is None:
                try:
                    audio.append(clf.decode(name))
                    good.append(len(results))
                except (AudioError, OSError) as err:
                    error = str(err)
            results.append({"file": name, "error": error})
        predictions = clf.predict_batch(audio, args.top_k, hop_seconds=args.hop, batch_size=args.batch_size)
        for i, prediction in zip(good, predictions):
            results[i] = {"file": results[i]["file"], **prediction.to_dict()}
        for row in results:
            failed += "error" in row
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(_predict_line(row, args.top_k), flush=True)
        rows += results
    if args.csv:
        _write_predictions_csv(args.csv, rows)
    if failed:
        print(f"kws predict: {failed} of {len(rows)} inputs could not be read", file=sys.stderr)
    return 1 if failed else 0


def _predict_line(row: dict, top_k: int) -> str:
    name = row["file"] if len(row["file"]) <= 40 else "..." + row["file"][-37:]
    if "error" in row:
        return f"{name:<40} error: {row['error']}"
    others = ", ".join(f"{t['label']} {t['score']:.3f}" for t in row["top_k"][1:top_k])
    line = f"{name:<40} {row['label']:<12} {row['score']:6.3f}  {others}"
    best = row.get("best_window")
    if best:
        line += f"  [{best['start']:.2f}-{best['end']:.2f} s of {row['seconds']:.2f} s]"
    return line


def _write_predictions_csv(path: str, rows: list[dict]) -> None:
    """file,label,score,top_k,error (top_k as JSON), written to a temp file and renamed into place."""
    import csv
    import os

    out = Path(path).expanduser()
    if not out.parent.is_dir():
        raise ValueError(f"--csv {path}: folder {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "label", "score", "top_k", "error"])
        for row in rows:
            if "error" in row:
                writer.writerow([row["file"], "", "", "", row["error"]])
            else:
                writer.writerow([row["file"], row["label"], f"{row['score']:.6f}", json.dumps(row["top_k"]), ""])
    os.replace(tmp, out)


def _stream_cmd(args: argparse.Namespace) -> int:
    from kwslib.config import StreamConfig
    from kwslib.inference import Classifier
    from kwslib.streaming import (
        StreamingDetector,
        file_chunks,
        import_sounddevice,
        iter_detections,
        list_devices,
        microphone_chunks,
    )

    if args.list_devices:
        print(list_devices())
        return 0
    cfg = from_namespace(StreamConfig, args)
    live = args.file is None
    if live:
        import_sounddevice()  # a missing back end fails before the model is loaded
    clf = Classifier.load(cfg.model)
    detector = StreamingDetector.from_config(clf, cfg, live=live)
    if live:
        device = int(args.device) if args.device and args.device.isdigit() else args.device
        chunks = microphone_chunks(clf.sample_rate, device=device)
        keywords = [label for label in clf.labels if not label.startswith("_")]
        print(f"kws stream: listening for {', '.join(keywords)}; Ctrl+C stops", file=sys.stderr)
    else:
        samples = clf.decode(args.file)
        chunks = file_chunks(samples, clf.sample_rate, padding_seconds=detector.end_padding())
    count = 0
    try:
        for detection in iter_detections(detector, chunks):
            print(json.dumps(detection.to_dict()) if args.json else str(detection), flush=True)
            count += 1
    except KeyboardInterrupt:
        if not live:
            raise
    extra = f", {detector.skipped_windows} skipped by the VAD" if detector.vad is not None else ""
    extra += f", {detector.dropped_windows} dropped (fell behind)" if detector.dropped_windows else ""
    print(
        f"kws stream: {count} detections in {detector.seconds:.1f} s of audio "
        f"({detector.scored_windows} windows scored{extra})",
        file=sys.stderr,
    )
    return 0


def _stream_eval_cmd(args: argparse.Namespace) -> int:
    from kwslib.config import StreamConfig
    from kwslib.streaming import evaluate_stream

    cfg = from_namespace(StreamConfig, args)
    result = evaluate_stream(cfg, progress=not args.quiet)
    s = result.stream
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    d, target, rt = s["default"], s["target"], s["runtime"]
    threshold = f"threshold {d['threshold']:g}" if "threshold" in d else f"thresholds {d['thresholds']}"
    print(
        f"kws stream-eval: {s['stream']['seconds'] / 60:.1f} min stream, {d['keywords']} keywords, "
        f"{d['non_keywords']} non-keywords"
    )
    latency = (
        f"latency median {d['latency_ms_median']:.0f} ms, p90 {d['latency_ms_p90']:.0f} ms"
        if d["latency_ms_median"] is not None
        else "no hits"
    )
    print(
        f"  {threshold}: miss rate {d['miss_rate']:.1%} ({d['misses']} of {d['keywords']}), "
        f"{d['false_accepts_per_hour']:.2f} false accepts/h ({d['false_accepts']}), {latency}"
    )
    if target["threshold"] is not None:
        print(
            f"  <= {target['false_accepts_per_hour']:g} false accepts/h from threshold {target['threshold']:g}: "
            f"miss rate {target['miss_rate']:.1%}"
        )
    else:
        print(f"  no swept threshold keeps false accepts at or below {target['false_accepts_per_hour']:g}/h")
    skipped = f", {rt['skipped_windows']} skipped by the VAD" if s["detector"]["vad"] else ""
    print(
        f"  scored {rt['scored_windows']} windows in {rt['seconds']:.1f} s "
        f"(real-time factor {rt['real_time_factor']:.4f}){skipped}"
    )
    print(f"  metrics: {result.metrics_path}")
    if result.wav_path:
        print(f"  stream:  {result.wav_path} + {result.csv_path}")
    return 0


def _sagemaker(args: argparse.Namespace, run) -> int:
    """Run one `kws sagemaker` command; an AWS failure or a missing SDK is one line and exit 1."""
    from kwslib.config import SageMakerConfig
    from kwslib.sagemaker.launch import SageMakerError

    try:
        return run(from_namespace(SageMakerConfig, args))
    except SageMakerError as err:
        print(f"kws: error: {err}", file=sys.stderr)
        return 1


def _sagemaker_train(args: argparse.Namespace) -> int:
    from kwslib.config import SageMakerTrainConfig
    from kwslib.sagemaker import launch

    def run(cfg):
        job = launch.train(cfg, from_namespace(SageMakerTrainConfig, args), args.hyperparameters)
        print(f"kws sagemaker train: started training job {job.job_name}")
        print(f"  hyperparameters: {json.dumps(job.hyperparameters)}")
        if job.checkpoint_s3_uri:
            print(f"  checkpoints: {job.checkpoint_s3_uri}")
        print(f"  model: {job.output_path}/{job.job_name}/output/model.tar.gz (deploy it with kws sagemaker deploy)")
        return 0

    return _sagemaker(args, run)


def _sagemaker_package(args: argparse.Namespace) -> int:
    from kwslib.sagemaker.launch import package

    out = package(args.model, args.out, onnx=args.onnx)
    print(f"kws sagemaker package: {out} ({out.stat().st_size / 2**20:.1f} MB)")
    return 0


def _sagemaker_deploy(args: argparse.Namespace) -> int:
    from kwslib.config import SageMakerDeployConfig
    from kwslib.sagemaker import launch

    def run(cfg):
        done = launch.deploy(cfg, from_namespace(SageMakerDeployConfig, args))
        kind = "serverless" if done.serverless else args.instance_type
        print(f"kws sagemaker deploy: endpoint {done.endpoint_name} ({kind}) serving {done.model_data}")
        print(f"  try it: kws sagemaker invoke --endpoint-name {done.endpoint_name} clip.wav")
        return 0

    return _sagemaker(args, run)


def _sagemaker_invoke(args: argparse.Namespace) -> int:
    from kwslib.sagemaker import launch

    def run(cfg):
        print(json.dumps(launch.invoke(cfg, args.endpoint_name, args.audio, top_k=args.top_k), indent=2))
        return 0

    return _sagemaker(args, run)


def _sagemaker_batch(args: argparse.Namespace) -> int:
    from kwslib.config import SageMakerBatchConfig
    from kwslib.sagemaker import launch

    def run(cfg):
        batch_cfg = from_namespace(SageMakerBatchConfig, args)
        job = launch.batch(cfg, batch_cfg)
        print(f"kws sagemaker batch: started transform job {job} ({batch_cfg.input_format} input)")
        print(f"  results: {batch_cfg.output.rstrip('/')}/<input name>.out, one JSON line per input")
        return 0

    return _sagemaker(args, run)


def _sagemaker_delete(args: argparse.Namespace) -> int:
    from kwslib.sagemaker import launch

    def run(cfg):
        gone = launch.delete(cfg, args.endpoint_name)
        print(
            f"kws sagemaker delete: endpoint {gone['endpoint']}, endpoint config {gone['endpoint_config']}, "
            f"model(s) {', '.join(gone['models'])}"
        )
        return 0

    return _sagemaker(args, run)


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

    # -- export and predict (kwslib.export, kwslib.inference) --------------------------------------------------
    from kwslib.config import ExportConfig

    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX (optionally int8), checked against PyTorch",
        description="Write <out> (raw 16 kHz waveform in, logits and probabilities out, labels in its metadata), "
        "check it against PyTorch at 1 s, 0.5 s and 3 s, and save the numbers in <out>.parity.json. With --quantize "
        "int8 also <out stem>.int8.onnx, checked for top-1 agreement and accuracy on --data's validation split.",
    )
    add_dataclass_arguments(p, ExportConfig)
    p.add_argument("--json", action="store_true", help="print the result and parity numbers as JSON")
    p.set_defaults(func=_export)

    p = sub.add_parser(
        "predict",
        help="classify audio files with a checkpoint folder or an .onnx model",
        description="Score audio files (any rate, channels or length; long files in sliding 1 s windows). PATH is a "
        "file, a folder (its wav/flac/ogg/mp3 files, recursively) or @list.txt (one path a line). An input that "
        "cannot be read is reported and the rest are still scored; the exit status is then 1.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio file, folder, or @list.txt")
    p.add_argument(
        "--model",
        default="runs/demo/model",
        metavar="DIR|FILE.onnx",
        help="checkpoint folder or exported .onnx (default: runs/demo/model)",
    )
    p.add_argument("--top-k", type=int, default=5, help="labels to report per input (default: 5)")
    p.add_argument("--json", action="store_true", help="one JSON object per input and line")
    p.add_argument("--csv", metavar="OUT.csv", help="also write file,label,score,top_k,error to this CSV")
    p.add_argument("--hop", type=float, default=0.25, help="seconds between windows of long inputs (default: 0.25)")
    p.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (default: 16)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model (default: the runtime's)")
    p.set_defaults(func=_predict)

    # kws stream / kws stream-eval
    from kwslib.config import StreamConfig

    eval_only = ("data", "split", "minutes", "out", "seed", "min_snr_db", "max_snr_db", "min_spacing", "max_spacing",
                 "unknown_share", "tolerance", "wav", "csv", "save_stream")  # fmt: skip
    p = sub.add_parser(
        "stream",
        help="detect keywords live from a microphone, or in a long audio file (--file)",
        description="Slide a window over continuous audio, smooth the posteriors and print each detection. Without "
        "--file it listens to a microphone (needs sounddevice) until Ctrl+C.",
    )
    p.add_argument("--file", metavar="AUDIO", default=None, help="a long recording (any format and rate) to scan")
    p.add_argument("--json", action="store_true", help='one JSON line per detection: {"time", "label", "score"}')
    p.add_argument("--device", default=None, help="microphone: input device index or name (see --list-devices)")
    p.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    add_dataclass_arguments(p, StreamConfig, skip=eval_only)
    p.set_defaults(func=_stream_cmd)

    p = sub.add_parser(
        "stream-eval",
        help="miss rate, false accepts per hour and latency on a long test stream; writes metrics.json `stream`",
        description="Place a split's keywords and other words at random times into background noise (or read "
        "--wav + --csv), run the streaming detector once, sweep the threshold, and set `stream` in "
        "<out>/metrics.json (the report's Streaming section).",
    )
    add_dataclass_arguments(p, StreamConfig, skip=("max_backlog_seconds",))
    p.add_argument("--json", action="store_true", help="print the stream section as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_stream_eval_cmd)

    # -- kws sagemaker {train,package,deploy,invoke,batch,delete} (kwslib.sagemaker.launch) -------------------------
    from kwslib.config import SageMakerBatchConfig, SageMakerConfig, SageMakerDeployConfig, SageMakerTrainConfig

    sm = sub.add_parser(
        "sagemaker",
        help="train, package, deploy and run batch jobs on Amazon SageMaker (SDK v2)",
        description="Train in the Hugging Face training container, package a model.tar.gz with the kws serving "
        "handler, deploy it to a real-time or serverless endpoint, invoke it, run batch transforms, clean up. "
        "Needs pip install 'kwslib[sagemaker]' and AWS credentials (except package).",
    )
    sm_sub = sm.add_subparsers(dest="sagemaker_command", metavar="COMMAND", required=True)
    p = sm_sub.add_parser(
        "train",
        help="start a training job (kws train in the Hugging Face container)",
        description="Start a SageMaker training job running `kws train` on --data (an S3 Speech Commands folder or a "
        "hub id). Options after -- are `kws train` options, e.g. -- --epochs 30 --model compact. --spot checkpoints "
        "to S3 and resumes after an interruption; --instance-count > 1 or --distributed runs torchrun on every GPU.",
    )
    add_dataclass_arguments(p, SageMakerConfig)
    add_dataclass_arguments(p, SageMakerTrainConfig)
    p.add_argument(
        "hyperparameters", nargs=argparse.REMAINDER, metavar="-- KWS_TRAIN_OPTIONS", help="kws train options"
    )
    p.set_defaults(func=_sagemaker_train)

    p = sm_sub.add_parser(
        "package",
        help="build model.tar.gz (model files at the root, code/inference.py, code/requirements.txt)",
        description="Pack a checkpoint folder or a model.onnx into a SageMaker model archive with the kws serving "
        "handler and a copy of kwslib in code/. A checkpoint folder also gets model.onnx (exported and checked), "
        "which the endpoint serves with onnxruntime. The archive is loaded and scored once before it is written.",
    )
    p.add_argument("--model", required=True, metavar="DIR|model.onnx", help="checkpoint folder or exported .onnx")
    p.add_argument("--out", required=True, metavar="model.tar.gz", help="archive to write")
    p.add_argument(
        "--onnx", action=argparse.BooleanOptionalAction, default=True, help="add model.onnx to a checkpoint folder"
    )
    p.set_defaults(func=_sagemaker_package)

    p = sm_sub.add_parser(
        "deploy",
        help="deploy a model.tar.gz to a real-time or serverless endpoint",
        description="Create a model, endpoint configuration and endpoint from a model.tar.gz (a local one is uploaded "
        "to s3://<bucket>/<prefix>/models/).",
    )
    add_dataclass_arguments(p, SageMakerConfig)
    add_dataclass_arguments(p, SageMakerDeployConfig)
    p.set_defaults(func=_sagemaker_deploy)

    p = sm_sub.add_parser(
        "invoke",
        help="send a local audio file to an endpoint and print the JSON answer",
        description="POST the file's bytes (audio/wav, audio/flac, ...) or, with --top-k, JSON with base64 audio.",
    )
    add_dataclass_arguments(p, SageMakerConfig, skip=("role", "bucket", "prefix"))
    p.add_argument("--endpoint-name", required=True, help="endpoint to invoke")
    p.add_argument("audio", metavar="AUDIO", help="audio file (wav, flac, ogg, mp3)")
    p.add_argument("--top-k", type=int, default=None, help="labels to return (sends JSON; default: the handler's 5)")
    p.set_defaults(func=_sagemaker_invoke)

    p = sm_sub.add_parser(
        "batch",
        help="batch transform over S3: a JSONL of requests, or a prefix of audio files; JSONL out",
        description='JSONL input: one request a line, {"id": ..., "inputs": "<base64 audio>" | "s3://bucket/key" '
        '| [samples], "sampling_rate": 16000, "parameters": {"top_k": 5}}; the output has one line per input line. '
        "Audio input: every object under --input is one request. Results go to <output>/<input name>.out.",
    )
    add_dataclass_arguments(p, SageMakerConfig)
    add_dataclass_arguments(p, SageMakerBatchConfig)
    p.set_defaults(func=_sagemaker_batch)

    p = sm_sub.add_parser(
        "delete",
        help="delete an endpoint, its endpoint configuration and its model",
        description="Stop paying for an endpoint: deletes the model(s), the endpoint configuration and the endpoint.",
    )
    add_dataclass_arguments(p, SageMakerConfig, skip=("role", "bucket", "prefix"))
    p.add_argument("--endpoint-name", required=True, help="endpoint to delete")
    p.set_defaults(func=_sagemaker_delete)
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
