"""Streaming detection cost: real-time factor per core, with and without the VAD gate.

Real-time factor (RTF) = CPU seconds of processing / seconds of audio, on one thread (torch intra-op 1, onnxruntime
intra-op 1, BLAS pools 1), measured with `time.process_time()` around `StreamingDetector.predict_clip` (windows,
batching, smoothing, thresholds, VAD: the whole streaming path). CPU time, not wall time, because the machine is
shared; the 1-minute load average is recorded anyway. Models:

- `compact` (the small CNN, goal RTF <= 0.01) on PyTorch and on onnxruntime, random weights (speed does not depend
  on them);
- a wav2vec2-base-sized model (`build_model("wav2vec2-base-random")`, 94 M parameters) exported to ONNX, on
  onnxruntime.

Two streams from the dataset's test split (`kwslib.streaming.make_stream`): "sparse", mostly non-speech (one word
every 8-12 s over background noise: the VAD gate's case), and "dense" (a word every 1-1.3 s: nearly every window
holds speech, so the VAD is pure overhead). Each row is the median of `--repeats` runs. The VAD alone (silero-vad on
onnxruntime over every 512-sample frame) is timed too. Offline detector (blocks of 16 hops); the live path (a push
per hop, batch 1) is timed for compact as well.

    .venv/bin/python benchmarks/streaming.py [--data data/synth] [--seconds 60] [--w2v-seconds 20] [--quick]

Prints a table and writes benchmarks/results/streaming.json (atomically).
"""

from __future__ import annotations

import os

# One thread everywhere, before numpy and torch load their pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from context import cpu_name, load1, machine_context  # noqa: E402

from kwslib.config import SAMPLE_RATE, DataConfig, StreamConfig  # noqa: E402
from kwslib.evaluation import write_json_atomic  # noqa: E402
from kwslib.export import write_graph  # noqa: E402
from kwslib.inference import OnnxClassifier, TorchClassifier  # noqa: E402
from kwslib.labels import SC12_KEYWORDS, LabelSet  # noqa: E402
from kwslib.models import WaveformClassifier, build_model  # noqa: E402
from kwslib.streaming import DEFAULT_SMOOTHING, SileroVAD, StreamingDetector, make_stream  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "streaming.json"
RTF_GOAL_COMPACT = 0.01
STREAMS = {  # name: (min_spacing, max_spacing, unknown_share) between word starts, seconds
    "sparse": (8.0, 12.0, 0.25),
    "dense": (1.0, 1.3, 0.25),  # back to back: a word is always followed by at least 0.5 s of background
}
HOP_SECONDS = 0.1


def classifiers(names: list[str], tmp: Path) -> dict[str, object]:
    """name -> Classifier on one thread: compact on torch and ORT, wav2vec2-base-random on ORT."""
    labels = LabelSet("sc12", SC12_KEYWORDS)
    out = {}
    for name in names:
        model, feature_extractor = build_model(name, labels, spec_augment=False)
        module = WaveformClassifier.wrap(model, feature_extractor).eval()
        label_list = list(labels.labels)
        if name == "compact":
            out["compact (torch)"] = TorchClassifier(module, label_list, name="compact", threads=1)
        path = tmp / f"{name}.onnx"
        write_graph(module, path, {"labels": label_list, "sample_rate": SAMPLE_RATE, "clip_seconds": 1.0})
        out[f"{name} (onnxruntime)"] = OnnxClassifier.from_file(path, threads=1)
    return out


def cpu_time(fn, repeats: int) -> tuple[float, list[float], object]:
    """Median CPU seconds of `fn()` over `repeats` runs (after none: the first windows are part of streaming)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.process_time()
        result = fn()
        times.append(time.process_time() - start)
    return statistics.median(times), times, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/synth", help="dataset whose test split makes the streams")
    parser.add_argument("--seconds", type=float, default=60.0, help="stream length for compact (default: 60)")
    parser.add_argument("--w2v-seconds", type=float, default=20.0, help="stream length for wav2vec2-base (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per compact row; the median is kept (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 s compact streams, 3 s wav2vec2 streams")
    parser.add_argument("--no-w2v", action="store_true", help="leave out wav2vec2-base")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    if not Path(args.data).is_dir():
        parser.error(f"--data {args.data} is not a folder; make one with `kws synth --out {args.data}`")
    if args.quick:
        args.seconds, args.w2v_seconds, args.repeats = 10.0, 3.0, 1
    if args.seconds < 5 or args.w2v_seconds < 2 or args.repeats < 1:
        parser.error("--seconds must be at least 5, --w2v-seconds at least 2 and --repeats at least 1")

    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(1)
    load_before = load1()
    started = time.perf_counter()

    data_cfg = DataConfig(source=args.data, unknown_percentage=100.0)
    keywords = list(SC12_KEYWORDS)
    streams = {}
    for name, (lo, hi, unknown) in STREAMS.items():
        longest = max(args.seconds, args.w2v_seconds)
        cfg = StreamConfig(minutes=longest / 60, min_spacing=lo, max_spacing=hi, unknown_share=unknown, seed=1)
        streams[name], _ = make_stream(data_cfg, keywords, cfg, SAMPLE_RATE)

    vad = SileroVAD(threads=1)
    vad_rows = []
    for name, samples in streams.items():
        x = samples[: int(args.seconds * SAMPLE_RATE)]

        def run_vad(x=x):
            vad.reset()
            return vad.push(x)

        seconds, runs, probs = cpu_time(run_vad, args.repeats)
        vad_rows.append(
            {
                "stream": name,
                "audio_seconds": len(x) / SAMPLE_RATE,
                "cpu_seconds": seconds,
                "rtf": seconds / (len(x) / SAMPLE_RATE),
                "speech_frames_share": float((probs >= 0.5).mean()),
                "runs": [round(r, 4) for r in runs],
            }
        )

    rows = []
    with tempfile.TemporaryDirectory(prefix="kws-bench-streaming-") as tmp:
        names = ["compact"] + ([] if args.no_w2v else ["wav2vec2-base-random"])
        models = classifiers(names, Path(tmp))
        for model_name, clf in models.items():
            w2v = model_name.startswith("wav2vec2")
            seconds_of_audio = args.w2v_seconds if w2v else args.seconds
            repeats = 1 if w2v else args.repeats
            clf.probabilities(np.zeros((16, SAMPLE_RATE), dtype=np.float32))  # one-off initialisation, untimed
            modes = [("offline", None)] + ([("live", 2.0)] if not w2v else [])
            for stream_name, samples in streams.items():
                x = samples[: int(seconds_of_audio * SAMPLE_RATE)]
                for mode, backlog in modes:
                    for use_vad in (False, True):
                        if mode == "live" and use_vad:
                            continue
                        detector = StreamingDetector(
                            clf, hop=HOP_SECONDS, vad=vad if use_vad else False, max_backlog_seconds=backlog
                        )
                        chunk = HOP_SECONDS if mode == "live" else 1.0

                        def run(detector=detector, x=x, chunk=chunk):
                            return detector.predict_clip(x, padding_seconds=0.0, chunk_seconds=chunk)

                        load = load1()
                        cpu, runs, _ = cpu_time(run, repeats)
                        audio = len(x) / SAMPLE_RATE
                        rows.append(
                            {
                                "model": model_name,
                                "stream": stream_name,
                                "mode": mode,
                                "vad": use_vad,
                                "audio_seconds": audio,
                                "scored_windows": detector.scored_windows,
                                "skipped_windows": detector.skipped_windows,
                                "cpu_seconds": cpu,
                                "rtf": cpu / audio,
                                "ms_per_scored_window": 1000 * cpu / max(detector.scored_windows, 1),
                                "runs": [round(r, 4) for r in runs],
                                "load1_before": load,
                            }
                        )
                        print(
                            f"  {model_name:<32} {stream_name:<7} {mode:<8} vad={'on ' if use_vad else 'off'} "
                            f"RTF {cpu / audio:.4f}",
                            flush=True,
                        )
    for r in rows:
        if r["vad"]:
            base = next(
                b
                for b in rows
                if (b["model"], b["stream"], b["mode"], b["vad"]) == (r["model"], r["stream"], r["mode"], False)
            )
            r["speedup_from_vad"] = base["rtf"] / r["rtf"]
    load_after = load1()
    elapsed = time.perf_counter() - started

    print(
        f"\n{cpu_name()}, {os.cpu_count()} CPUs, 1 thread, hop {HOP_SECONDS} s, "
        f"load {load_before:.2f} -> {load_after:.2f}"
    )
    print(
        f"{'model':<32} {'stream':<7} {'mode':<8} {'VAD':<4} {'audio s':>8} {'scored':>7} {'skipped':>8} "
        f"{'ms/window':>10} {'RTF':>8} {'VAD speed-up':>13}"
    )
    for r in rows:
        speedup = f"{r['speedup_from_vad']:.2f}x" if "speedup_from_vad" in r else ""
        print(
            f"{r['model']:<32} {r['stream']:<7} {r['mode']:<8} {'on' if r['vad'] else 'off':<4} "
            f"{r['audio_seconds']:8.0f} {r['scored_windows']:7d} {r['skipped_windows']:8d} "
            f"{r['ms_per_scored_window']:10.2f} {r['rtf']:8.4f} {speedup:>13}"
        )
    for v in vad_rows:
        print(
            f"{'silero-vad alone (onnxruntime)':<32} {v['stream']:<7} {'':<8} {'':<4} {v['audio_seconds']:8.0f} "
            f"{'':>7} {'':>8} {'':>10} {v['rtf']:8.4f}   speech frames {v['speech_frames_share']:.0%}"
        )
    compact = [r for r in rows if r["model"].startswith("compact") and r["mode"] == "offline" and not r["vad"]]
    best = min(compact, key=lambda r: r["rtf"])
    verdict = "met" if max(r["rtf"] for r in compact if r["model"] == best["model"]) <= RTF_GOAL_COMPACT else "NOT met"
    print(f"compact goal RTF <= {RTF_GOAL_COMPACT} without VAD: {verdict} by {best['model']} (best {best['rtf']:.4f})")

    write_json_atomic(
        args.out,
        {
            "benchmark": "streaming",
            "unit": "real-time factor: CPU seconds per second of audio, one thread (lower is better)",
            "baseline": "the same detector without the VAD gate (speedup_from_vad)",
            "goal": {"compact_rtf": RTF_GOAL_COMPACT, "met": verdict == "met", "best": best["model"]},
            "rows": rows,
            "vad_alone": vad_rows,
            "settings": {
                "data": args.data,
                "streams": {k: {"spacing_seconds": [lo, hi], "unknown_share": u} for k, (lo, hi, u) in STREAMS.items()},
                "compact_seconds": args.seconds,
                "wav2vec2_seconds": args.w2v_seconds,
                "repeats_compact": args.repeats,
                "hop": HOP_SECONDS,
                "window": 1.0,
                "smoothing": DEFAULT_SMOOTHING,
                "offline": "blocks of 16 hops, pushed in 1 s chunks",
                "live": "max backlog 2 s, pushed in 0.1 s chunks: one window per call",
                "threads": 1,
                "quick": args.quick,
            },
            "context": machine_context(load_before, seconds=elapsed, packages=("torch", "onnxruntime", "silero-vad")),
        },
    )
    print(f"wrote {args.out} ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
