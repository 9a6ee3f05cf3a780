"""How fast `kws synth` makes clips, against the naive way of doing the same work.

Rows:
- `synthesize jobs=N`: the real `synthesize` (festival batched per speaker, process pool), noise files included.
- `synthesize jobs=1`: the same, one process, to separate batching from parallelism.
- `naive baseline`: one engine process per clip (festival and espeak-ng too), sequential, written with
  kwslib.audio.write_wav, on a smaller slice of the same speakers.

Usage: python benchmarks/synth_speed.py [--speakers 30] [--baseline-speakers 6] [--jobs 2]
Writes benchmarks/results/synth_speed.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

from context import cpu_name, git_commit

from kwslib.audio import write_wav
from kwslib.config import SAMPLE_RATE, SynthConfig
from kwslib.data import synth
from kwslib.labels import SC35_WORDS

RESULTS = Path(__file__).resolve().parent / "results" / "synth_speed.json"


def _synthesize(speakers: int, jobs: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="kws-bench-") as tmp:
        cfg = SynthConfig(out=str(Path(tmp) / "data"), speakers=speakers, jobs=jobs, seed=seed)
        started = time.perf_counter()
        summary = synth.synthesize(cfg, progress=False)
        seconds = time.perf_counter() - started
    return {"method": f"synthesize jobs={jobs}", "clips": summary.clips_written, "seconds": seconds}


def _baseline_speakers(speakers: list[synth.Speaker], n: int) -> list[synth.Speaker]:
    """`n` of `speakers` with each engine in its share, so the slice costs what the full run costs per clip."""
    counts = Counter(s.engine for s in speakers)
    take = {e: max(1, round(n * c / len(speakers))) for e, c in counts.items()}
    return [s for e in counts for s in [x for x in speakers if x.engine == e][: take[e]]]


def _naive(speakers: list[synth.Speaker], seed: int) -> dict:
    """One engine process per clip, sequential: what a first version of synth would do."""
    clips = 0
    with tempfile.TemporaryDirectory(prefix="kws-bench-naive-") as tmp:
        out = Path(tmp) / "data"
        for word in SC35_WORDS:
            (out / synth.folder_name(word)).mkdir(parents=True)
        started = time.perf_counter()
        for spk in speakers:
            for word in SC35_WORDS:
                (raw,), _ = synth.synthesize_raw(spk, [word], Path(tmp) / "raw")
                if raw is None:
                    continue
                data, rate = raw
                clip, _ = synth.render_clip(data, rate, spk.pitch, SAMPLE_RATE, synth._rng(seed, spk.id, word))
                if clip is not None:
                    write_wav(out / synth.clip_path(word, spk), clip, SAMPLE_RATE)
                    clips += 1
        seconds = time.perf_counter() - started
    return {"method": "naive baseline (process per clip, jobs=1)", "clips": clips, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speakers", type=int, default=30, help="speakers of the synthesize runs (x 35 words)")
    parser.add_argument("--baseline-speakers", type=int, default=6, help="speakers of the slower naive baseline")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes of the parallel run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-jobs1", action="store_true", help="leave out the synthesize jobs=1 row")
    args = parser.parse_args(argv)

    warnings.simplefilter("default", synth.MissingEngineWarning)
    voices, _ = synth.engine_voices()
    if not voices:
        print(f"no TTS engine found; install one: {synth.INSTALL_ALL}", file=sys.stderr)
        return 2
    planned = synth.assign_splits(synth.plan_speakers(args.speakers, voices, args.seed), 0.1, 0.1, args.seed)
    slice_ = _baseline_speakers(planned, args.baseline_speakers)

    load_before = os.getloadavg()
    rows = [_naive(slice_, args.seed), _synthesize(args.speakers, args.jobs, args.seed)]
    if not args.skip_jobs1 and args.jobs != 1:
        rows.append(_synthesize(args.speakers, 1, args.seed))
    base = rows[0]["clips"] / rows[0]["seconds"]
    for row in rows:
        row["clips_per_second"] = round(row["clips"] / row["seconds"], 2)
        row["ratio_vs_baseline"] = round(row["clips_per_second"] / base, 2)
        row["seconds"] = round(row["seconds"], 2)

    print(f"{'method':<44} {'clips':>6} {'seconds':>8} {'clips/s':>8} {'ratio':>6}")
    for row in rows:
        print(
            f"{row['method']:<44} {row['clips']:>6} {row['seconds']:>8.2f} "
            f"{row['clips_per_second']:>8.2f} {row['ratio_vs_baseline']:>5.2f}x"
        )
    result = {
        "benchmark": "synth_speed",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "cpu": cpu_name(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        # Other work on the machine slows every row; a 1-minute load above ~0.5 before the run means numbers are low.
        "load_average_1m": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "engines": {e: synth._engine_version(e) for e in voices},
        "args": vars(args),
        "baseline_speakers": {e: n for e, n in Counter(s.engine for s in slice_).items()},
        "notes": "synthesize rows include writing the 5 background noise files (60 s each); the baseline does not",
        "rows": rows,
    }
    print(f"load average (1 min) before/after: {result['load_average_1m']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    synth.write_atomic(RESULTS, json.dumps(result, indent=2) + "\n")
    print(f"saved {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
