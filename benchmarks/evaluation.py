"""Evaluation throughput: clips/s of `kws evaluate` across all conditions, against scoring clips one at a time with
`transformers.pipeline` (the baseline a user would write), and the corruption cost of every condition.

Rows, in one run on the same model and clips:
  - `pipeline, clean`: `transformers.pipeline("audio-classification")` called per decoded clip (clean only);
  - `Classifier, clean`: kwslib's batched scoring of the same clips (clean only);
  - `kws evaluate, all conditions`: the whole evaluation (decode, corrupt under every condition, score, metrics),
    counting every (clip, condition) pair scored;
and, single-threaded, how many clips/s each condition's corruption alone runs at (the codec is the slow one).

    .venv/bin/python benchmarks/evaluation.py [--model runs/demo/model] [--data data/synth] [--max-clips 300]

Needs a trained model and its data (`make demo` makes both). Prints a table and writes
benchmarks/results/evaluation.json (atomically).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from context import cpu_name, git_commit, load1

from kwslib.evaluation import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "evaluation.json"


def corruption_speed(clips: list[np.ndarray], background, seconds_budget: float = 1.0) -> list[dict]:
    """Clips/s of each default condition's corruption alone (no model), on one thread."""
    from kwslib.conditions import Corruptor, default_conditions

    pool = [(f"s{i % 7}", c) for i, c in enumerate(clips)]
    corruptor = Corruptor(background, pool, seed=0)
    rows = []
    for condition in corruptor.available(default_conditions()):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds_budget or n < 5:
            corruptor.apply(clips[n % len(clips)], condition, n, speaker_id="s0")
            n += 1
        rows.append({"condition": condition.name, "clips_per_second": round(n / (time.perf_counter() - t0), 1)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/demo/model", help="checkpoint folder or .onnx")
    parser.add_argument("--data", default="data/synth", help="dataset folder")
    parser.add_argument("--max-clips", type=int, default=300, help="test clips to score (seeded sample)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    if not Path(args.model).exists() or not Path(args.data).is_dir():
        sys.exit(f"benchmarks/evaluation.py: {args.model} or {args.data} is missing; run `make demo` first")

    import torch

    from kwslib.audio import load_audio
    from kwslib.config import EvalConfig
    from kwslib.data import load_data, load_noises
    from kwslib.evaluation import data_config_for, evaluate
    from kwslib.inference import Classifier

    clf = Classifier.load(args.model)
    data_cfg = data_config_for(clf, args.data)
    split = load_data(data_cfg)["test"]
    idx = np.sort(np.random.default_rng(0).choice(len(split), min(args.max_clips, len(split)), replace=False))
    clips = [load_audio(a, clip_seconds=1.0) for a in split.select(idx.tolist())["audio"]]
    rows = []

    if clf.backend == "torch":
        from transformers import pipeline

        pipe = pipeline("audio-classification", model=args.model, device="cpu")
        pipe({"raw": clips[0], "sampling_rate": 16000})  # warm-up
        t0 = time.perf_counter()
        for clip in clips:
            pipe({"raw": clip, "sampling_rate": 16000}, top_k=1)
        seconds = time.perf_counter() - t0
        rows.append({"name": "pipeline, clean", "clips": len(clips), "seconds": seconds})

    clf.probabilities(np.stack(clips[:8]))  # warm-up
    t0 = time.perf_counter()
    clf.probabilities(np.stack(clips), 64)
    rows.append({"name": "Classifier, clean", "clips": len(clips), "seconds": time.perf_counter() - t0})

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = evaluate(
            EvalConfig(model=args.model, out=tmp, max_clips=args.max_clips, report=False), data_cfg, progress=False
        )
        total = time.perf_counter() - t0
    runtime = result.metrics["evaluation"]["runtime"]
    conditions = len(result.metrics["evaluation"]["conditions"])
    rows.append({"name": f"kws evaluate, {conditions} conditions", "clips": runtime["clips"], "seconds": total})

    base = rows[0]["clips"] / rows[0]["seconds"]
    for row in rows:
        row["clips_per_second"] = round(row["clips"] / row["seconds"], 1)
        row["vs_first_row"] = round(row["clips_per_second"] / base, 2)
        row["seconds"] = round(row["seconds"], 2)

    torch.set_num_threads(1)
    speeds = corruption_speed(clips[:64], load_noises(data_cfg))

    print(f"model {args.model} ({clf.backend}), {len(clips)} test clips, baseline = first row")
    print(f"{'':34}{'clips':>8}{'seconds':>10}{'clips/s':>10}{'ratio':>8}")
    for row in rows:
        print(f"{row['name']:34}{row['clips']:>8}{row['seconds']:>10.2f}{row['clips_per_second']:>10.1f}"
              f"{row['vs_first_row']:>8.2f}")  # fmt: skip
    print("\ncorruption alone, one thread (clips/s):")
    for s in speeds:
        print(f"  {s['condition']:22}{s['clips_per_second']:>10.1f}")
    write_json_atomic(
        args.out,
        {
            "benchmark": "evaluation",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit(),
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "load1_at_end": load1(),
            "model": args.model,
            "backend": clf.backend,
            "results": rows,
            "corruption_clips_per_second": speeds,
        },
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
