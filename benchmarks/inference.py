"""Inference speed on CPU: `transformers.pipeline("audio-classification")` against kwslib's `Classifier` on PyTorch,
onnxruntime fp32 and onnxruntime int8, on the same clips in the same run.

For (a) a wav2vec2-base-sized model (`build_model("wav2vec2-base-random")`: wav2vec2-base's architecture and compute
with random weights) and (b) the compact CNN, each saved as a checkpoint folder and exported with `kwslib.export`
(fp32 + int8, parity-checked), four runners score the same 1 s clips at batch 1 and batch 16:

- `transformers.pipeline("audio-classification", model=<checkpoint folder>)` fed decoded arrays
  (`{"raw": x, "sampling_rate": 16000}`; ffmpeg is absent), `batch_size=1|16`, top 5: the baseline a user would call;
- `Classifier.load(<checkpoint folder>)` (PyTorch) and `Classifier.load(<model.onnx>)` / `<model.int8.onnx>`
  (onnxruntime), through `predict` (batch 1) and `predict_batch(batch_size=16)`, top 5.

Every runner gets an untimed warm-up call per batch size, then `--rounds` timed passes over the clips, interleaved
call by call (each batch of clips is scored by every runner in turn, the order rotating), so that the machine's
changing load (it is shared) falls on all runners alike. Everything runs on `--threads` intra-op threads (default 1:
on this 2-core machine shared with other jobs, two torch threads collapse whenever another process holds a core, as
`benchmarks/train_throughput.py` found; the session sweep below also tries one thread per core).

Reported per runner and batch size: clips/s (wall clock); p50/p95 latency of one call (one clip at batch 1, 16 clips
at batch 16); clips per CPU-second of this process (barely moved by other processes); both as ratios to the pipeline
at the same batch size; and the share of the machine's fp32 matmul rate the runner reaches: the model's FLOPs per 1 s
clip (`torch.utils.flop_counter.FlopCounterMode`) x clips/s / the `torch.mm` GFLOP/s measured in this run (best of
before and after; the same per CPU-second against one-thread `torch.mm`; int8 runners are given fp32-equivalent
FLOPs). Then an onnxruntime session-option sweep on the wav2vec2 int8 graph at batch 16 (optimisation level, memory
arena, thread spinning, thread count).

    .venv/bin/python benchmarks/inference.py [--quick] [--clips 32] [--compact-clips 256] [--rounds 2] [--threads N]

Prints a table and writes benchmarks/results/inference.json (atomically; `--quick` writes only with --out).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from context import cpu_name, git_commit, git_modified_files, load1

from kwslib.config import SAMPLE_RATE
from kwslib.evaluation import write_json_atomic
from kwslib.export import ProbeSignals, export_onnx
from kwslib.inference import Classifier, OnnxClassifier
from kwslib.labels import label_set
from kwslib.models import build_model

RESULTS = Path(__file__).resolve().parent / "results" / "inference.json"
BATCHES = (1, 16)
TOP_K = 5
RUNNERS = ("pipeline", "torch", "ort_fp32", "ort_int8")
RUNNER_NAMES = {
    "pipeline": "transformers.pipeline",
    "torch": "Classifier, PyTorch",
    "ort_fp32": "Classifier, ORT fp32",
    "ort_int8": "Classifier, ORT int8",
}
MATMUL_SIZE = 2048
GOAL_INT8_OVER_PIPELINE = 4.0


def cpu_flags() -> dict:
    """The vector extensions that decide onnxruntime's int8 kernels (VNNI or not)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = set(next(line for line in text.splitlines() if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        flags = set()
    return {f: f in flags for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")}


def matmul_gflops(threads: int, repeats: int = 5) -> tuple[float, float]:
    """fp32 `torch.mm` on MATMUL_SIZE square matrices: (GFLOP/s with `threads` threads, wall clock; GFLOP per
    CPU-second on one thread, which other processes on the machine barely move). Best of `repeats` each."""
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    flop = 2 * MATMUL_SIZE**3
    best = {}
    for n, clock in ((threads, time.perf_counter), (1, time.process_time)):
        torch.set_num_threads(n)
        torch.mm(a, b)
        seconds = float("inf")
        for _ in range(repeats):
            start = clock()
            torch.mm(a, b)
            seconds = min(seconds, clock() - start)
        best[n, clock] = flop / seconds / 1e9
    torch.set_num_threads(threads)
    return best[threads, time.perf_counter], best[1, time.process_time]


def flops_per_clip(model) -> float:
    """FLOPs of one forward pass on one 1 s clip, as counted by FlopCounterMode (matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(input_values=torch.zeros(1, SAMPLE_RATE))
    return float(counter.get_total_flops())


def make_runner(kind: str, model_dir: Path, onnx_paths: dict, threads: int):
    """A callable scoring a list of 1 s clips at a batch size the way a user of `kind` would."""
    if kind == "pipeline":
        from transformers import pipeline

        pipe = pipeline("audio-classification", model=str(model_dir), device="cpu")

        def run(clips: list[np.ndarray], batch: int):
            inputs = [{"raw": x, "sampling_rate": SAMPLE_RATE} for x in clips]
            if batch == 1:
                return pipe(inputs[0], top_k=TOP_K)
            return pipe(inputs, batch_size=batch, top_k=TOP_K)

        return run
    clf = Classifier.load(model_dir if kind == "torch" else onnx_paths[kind], threads=threads)

    def run(clips: list[np.ndarray], batch: int):
        if batch == 1:
            return clf.predict(clips[0], top_k=TOP_K)
        return clf.predict_batch(clips, top_k=TOP_K, batch_size=batch)

    return run


def measure(runners: dict, clips: list[np.ndarray], rounds: int) -> tuple[dict, list[dict]]:
    """Every runner at every batch size, interleaved call by call: for each batch of clips every runner scores it in
    turn, the order rotating from one batch of clips to the next. On a shared machine the load changes within
    seconds; interleaving at the call level gives every runner the same load, so their ratios stay fair."""
    for run in runners.values():  # untimed: first calls pay for lazy initialisation and allocator growth
        for batch in BATCHES:
            run(clips[:batch], batch)
    kinds = list(runners)
    calls = {(kind, batch): [] for kind in kinds for batch in BATCHES}
    loads = []
    for batch in BATCHES:
        for r in range(rounds):
            for n, i in enumerate(range(0, len(clips), batch)):
                shift = (n + r) % len(kinds)
                for kind in kinds[shift:] + kinds[:shift]:
                    cpu, start = time.process_time(), time.perf_counter()
                    runners[kind](clips[i : i + batch], batch)
                    calls[kind, batch].append(
                        (time.perf_counter() - start, time.process_time() - cpu, len(clips[i : i + batch]))
                    )
            done = {k: sum(c[2] for c in calls[k, batch]) / sum(c[0] for c in calls[k, batch]) for k in kinds}
            loads.append({"batch": batch, "round": r, "load1_after": load1()})
            print(
                f"  batch {batch:>2}, round {r}: "
                + ", ".join(f"{k} {v:.1f}" for k, v in done.items())
                + f" clips/s (load {loads[-1]['load1_after']:.1f})",
                flush=True,
            )
    out = {}
    for (kind, batch), cs in calls.items():
        lat = [c[0] for c in cs]
        n = sum(c[2] for c in cs)
        out[kind, batch] = {
            "clips_per_s": n / sum(lat),
            "p50_ms": 1000 * statistics.median(lat),
            "p95_ms": 1000 * float(np.percentile(lat, 95)),
            "clips_per_cpu_s": n / sum(c[1] for c in cs),
            "clips": n,
            "calls": len(lat),
        }
    return out, loads


def session_sweep(onnx_path: Path, clips: list[np.ndarray], threads: int, rounds: int) -> list[dict]:
    """onnxruntime session options on one graph at batch 16: optimisation level, intra-op threads, memory arena."""
    import onnxruntime as ort

    base = OnnxClassifier.from_file(onnx_path)
    level = ort.GraphOptimizationLevel
    cores = os.cpu_count() or 1
    other = cores if threads != cores else 1
    settings = [  # (name, optimisation level, intra-op threads, memory arena, spin-waiting threads)
        (
            f"ORT_ENABLE_ALL, {threads} intra-op thread(s), arena on (as above)",
            level.ORT_ENABLE_ALL,
            threads,
            True,
            True,
        ),
        ("ORT_ENABLE_EXTENDED", level.ORT_ENABLE_EXTENDED, threads, True, True),
        ("ORT_ENABLE_BASIC", level.ORT_ENABLE_BASIC, threads, True, True),
        ("cpu memory arena off", level.ORT_ENABLE_ALL, threads, False, True),
        ("intra-op spinning off", level.ORT_ENABLE_ALL, threads, True, False),
        (
            f"{other} intra-op thread(s)" + (" = cores" if other == cores else ""),
            level.ORT_ENABLE_ALL,
            other,
            True,
            True,
        ),
    ]
    classifiers = []
    for _, opt, n_threads, arena, spinning in settings:
        options = ort.SessionOptions()
        options.graph_optimization_level = opt
        options.intra_op_num_threads = n_threads
        options.enable_cpu_mem_arena = arena
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        options.log_severity_level = 3
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        classifiers.append(OnnxClassifier(session, base.labels, meta=base.meta, name=str(onnx_path)))
    runners = {
        name: (lambda c, b, clf=clf: clf.predict_batch(c, top_k=TOP_K, batch_size=b))
        for (name, *_), clf in zip(settings, classifiers)
    }
    for run in runners.values():
        run(clips[:16], 16)
    calls = {name: [] for name in runners}
    names = list(runners)
    starts = [i for _ in range(rounds) for i in range(0, len(clips), 16)]
    for n, i in enumerate(starts):  # interleaved call by call, as in `measure`
        for name in names[n % len(names) :] + names[: n % len(names)]:
            cpu, start = time.process_time(), time.perf_counter()
            runners[name](clips[i : i + 16], 16)
            calls[name].append((time.perf_counter() - start, time.process_time() - cpu, len(clips[i : i + 16])))
    rows = []
    for name in names:
        n = sum(c[2] for c in calls[name])
        rows.append(
            {
                "setting": name,
                "clips_per_s": n / sum(c[0] for c in calls[name]),
                "clips_per_cpu_s": n / sum(c[1] for c in calls[name]),
            }
        )
    for r in rows:
        r["ratio_vs_default"] = r["clips_per_s"] / rows[0]["clips_per_s"]
        print(f"  sweep: {r['setting']:<62} {r['clips_per_s']:6.2f} clips/s ({r['ratio_vs_default']:.2f}x)", flush=True)
    return rows


def bench_model(name: str, clips: list[np.ndarray], rounds: int, threads: int, tmp: Path, sweep: bool) -> dict:
    labels = label_set("sc12")
    torch.manual_seed(0)
    model, feature_extractor = build_model(name, labels, spec_augment=False)
    model.eval()
    model_dir = tmp / name
    model.save_pretrained(model_dir)
    feature_extractor.save_pretrained(model_dir)
    flops = flops_per_clip(model)
    params = sum(p.numel() for p in model.parameters())
    del model
    print(f"{name}: {params / 1e6:.2f} M parameters, {flops / 1e9:.3f} GFLOP per 1 s clip; exporting ...", flush=True)
    started = time.perf_counter()
    exported = export_onnx(model_dir, tmp / f"{name}.onnx", quantize="int8", verbose=False)
    export_seconds = time.perf_counter() - started
    onnx_paths = {"ort_fp32": exported.onnx_path, "ort_int8": exported.int8_path}
    runners = {kind: make_runner(kind, model_dir, onnx_paths, threads) for kind in RUNNERS}
    stats, loads = measure(runners, clips, rounds)
    del runners
    result = {
        "model": name,
        "parameters": params,
        "gflops_per_clip": flops / 1e9,
        "export_seconds": round(export_seconds, 1),
        "onnx_mb": round(exported.onnx_path.stat().st_size / 1e6, 1),
        "int8_mb": round(exported.int8_path.stat().st_size / 1e6, 1),
        "parity": exported.parity,
        "load1_per_round": loads,
        "runs": [],
    }
    for kind in RUNNERS:
        for batch in BATCHES:
            s = stats[kind, batch]
            s["ratio_vs_pipeline"] = s["clips_per_s"] / stats["pipeline", batch]["clips_per_s"]
            s["ratio_vs_pipeline_cpu"] = s["clips_per_cpu_s"] / stats["pipeline", batch]["clips_per_cpu_s"]
            result["runs"].append({"runner": kind, "what": RUNNER_NAMES[kind], "batch": batch, **s})
    if sweep:
        result["ort_int8_session_sweep_batch16"] = session_sweep(exported.int8_path, clips, threads, rounds)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: wav2vec2-tiny, few clips, one round")
    parser.add_argument("--clips", type=int, default=32, help="1 s clips per pass for wav2vec2 (default: 32)")
    parser.add_argument("--compact-clips", type=int, default=256, help="1 s clips per pass for compact (default: 256)")
    parser.add_argument("--rounds", type=int, default=2, help="timed passes per runner and batch (default: 2)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads for torch and onnxruntime (default 1: per core, and immune to the collapse two threads "
        "suffer when another process holds a core; the session sweep also tries one per core)",
    )
    parser.add_argument("--out", type=Path, default=None, help=f"JSON results file (default: {RESULTS})")
    args = parser.parse_args(argv)
    for name in ("clips", "compact_clips", "rounds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} must be at least 1")
    for name in ("clips", "compact_clips"):
        if getattr(args, name) % max(BATCHES):
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: give a multiple of {max(BATCHES)}")
    if args.quick:
        args.clips, args.compact_clips, args.rounds = 16, 32, 1
    out = args.out or (None if args.quick else RESULTS)
    wav2vec2 = "wav2vec2-tiny" if args.quick else "wav2vec2-base-random"

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    load_before = load1()
    started = time.perf_counter()
    gflops = [matmul_gflops(args.threads)]
    print(
        f"fp32 torch.mm {MATMUL_SIZE}x{MATMUL_SIZE}: {gflops[0][0]:.1f} GFLOP/s on {args.threads} threads, "
        f"{gflops[0][1]:.1f} GFLOP per CPU-second on 1 thread",
        flush=True,
    )

    # The same clips for every runner: deterministic tones, chirps, noises (compute is what is measured).
    all_clips = list(ProbeSignals.clips(max(args.clips, args.compact_clips), SAMPLE_RATE, seed=1))
    models = []
    with tempfile.TemporaryDirectory(prefix="kws-inference-bench-") as tmp:
        for name, n in ((wav2vec2, args.clips), ("compact", args.compact_clips)):
            models.append(
                bench_model(name, all_clips[:n], args.rounds, args.threads, Path(tmp), sweep=name == wav2vec2)
            )
            torch.set_num_threads(args.threads)  # Classifier(threads=...) sets it globally; keep it as asked
    gflops.append(matmul_gflops(args.threads))
    peak, peak_core = max(g[0] for g in gflops), max(g[1] for g in gflops)
    load_after = load1()
    seconds = time.perf_counter() - started
    for m in models:
        for r in m["runs"]:
            suffix = "" if r["runner"] != "ort_int8" else "_fp32_equivalent"
            r["matmul_share" + suffix] = m["gflops_per_clip"] * r["clips_per_s"] / peak
            r["matmul_share_per_cpu_s" + suffix] = m["gflops_per_clip"] * r["clips_per_cpu_s"] / peak_core

    print()
    print(
        f"{cpu_name()}, {os.cpu_count()} CPUs ({', '.join(k for k, v in cpu_flags().items() if v) or 'no AVX2'}), "
        f"{args.threads} threads; fp32 torch.mm {peak:.0f} GFLOP/s on {args.threads} threads, {peak_core:.0f} GFLOP "
        f"per CPU-second on 1 (best of before/after); load {load_before:.2f} -> {load_after:.2f}"
    )
    header = (
        f"{'model':<22} {'runner':<24} {'batch':>5} {'clips/s':>8} {'ratio':>6} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'mm share':>8} {'clips/CPU-s':>11} {'ratio':>6} {'mm share':>8}"
    )
    print(header)
    print("-" * len(header))
    for m in models:
        for r in m["runs"]:
            star = "" if "matmul_share" in r else "*"
            share = r.get("matmul_share", r.get("matmul_share_fp32_equivalent"))
            share_cpu = r.get("matmul_share_per_cpu_s", r.get("matmul_share_per_cpu_s_fp32_equivalent"))
            print(
                f"{m['model']:<22} {r['what']:<24} {r['batch']:>5} {r['clips_per_s']:8.2f} {r['ratio_vs_pipeline']:6.2f} "
                f"{r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {100 * share:7.1f}%{star or ' '}{r['clips_per_cpu_s']:10.2f} "
                f"{r['ratio_vs_pipeline_cpu']:6.2f} {100 * share_cpu:7.1f}%{star}"
            )
    print("ratio: / transformers.pipeline at the same batch size (wall clock; then per CPU-second of this process)")
    print(
        f"mm share: model GFLOP/clip x clips/s / {peak:.0f} GFLOP/s of torch.mm (wall); x clips/CPU-s / {peak_core:.0f} "
        "GFLOP per CPU-second of one-thread torch.mm (* int8: fp32-equivalent FLOPs)"
    )
    goal = {}
    for m in models:
        print(
            f"{m['model']}: {m['gflops_per_clip']:.3f} GFLOP/clip; export {m['export_seconds']} s; fp32 parity max "
            f"|dlogit| {m['parity']['fp32']['max_abs_logit_diff']:.2e}; int8 graph {m['parity']['int8']['graph']['ops']}"
        )
        if m["model"] == wav2vec2:
            runs = {(r["runner"], r["batch"]): r for r in m["runs"]}
            goal = {f"batch_{b}": runs["ort_int8", b]["ratio_vs_pipeline"] for b in BATCHES} | {
                f"batch_{b}_cpu": runs["ort_int8", b]["ratio_vs_pipeline_cpu"] for b in BATCHES
            }
            met = all(goal[f"batch_{b}"] >= GOAL_INT8_OVER_PIPELINE for b in BATCHES)
            print(
                f"goal ORT int8 >= {GOAL_INT8_OVER_PIPELINE:g}x pipeline on {wav2vec2}: "
                + ", ".join(f"batch {b} {goal[f'batch_{b}']:.2f}x" for b in BATCHES)
                + (" -> met" if met else " -> NOT met")
            )
            goal["met"] = met
            for s in m.get("ort_int8_session_sweep_batch16", []):
                print(
                    f"  ORT int8 batch 16, {s['setting']:<62} {s['clips_per_s']:6.2f} clips/s ({s['ratio_vs_default']:.2f}x)"
                )

    if out is None:
        print(f"({seconds:.0f} s; --quick: no JSON written, pass --out to keep it)")
        return
    write_json_atomic(
        out,
        {
            "benchmark": "inference",
            "unit": "1 s clips per second (wall clock) and per CPU-second of this process, CPU",
            "baseline": 'transformers.pipeline("audio-classification", model=<checkpoint folder>) on decoded arrays, '
            "same batch size",
            "goal": {"ort_int8_over_pipeline": GOAL_INT8_OVER_PIPELINE, "model": wav2vec2, **goal},
            "models": models,
            "settings": {
                "clips_wav2vec2": args.clips,
                "clips_compact": args.compact_clips,
                "rounds": args.rounds,
                "timing": "runners interleaved call by call, order rotating; untimed warm-up call per runner and batch",
                "batches": list(BATCHES),
                "top_k": TOP_K,
                "threads": args.threads,
                "clips": "deterministic 1 s test signals (tones, chirps, noises; kwslib.export.ProbeSignals, seed 1)",
                "matmul": f"fp32 torch.mm {MATMUL_SIZE}x{MATMUL_SIZE}, best of 5, before and after the runs",
                "onnx_export": "kwslib.export.export_onnx(quantize='int8'): MatMul/Gemm dynamic int8, convs fp32",
            },
            "context": {
                "commit": git_commit(),
                "modified_files": git_modified_files(),
                "cpu": cpu_name(),
                "cpu_count": os.cpu_count(),
                "cpu_flags": cpu_flags(),
                "matmul_gflops_wall_threads": [round(g[0], 1) for g in gflops],
                "matmul_gflops_per_cpu_s_1_thread": [round(g[1], 1) for g in gflops],
                "load1_before": load_before,
                "load1_after": load_after,
                "seconds": round(seconds, 1),
                "python": platform.python_version(),
                "torch": torch.__version__,
                "transformers": version("transformers"),
                "onnxruntime": version("onnxruntime"),
                "onnx": version("onnx"),
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        },
    )
    print(f"wrote {out} ({seconds:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
