"""Clips per second per core of `kwslib.augment.Augmenter` on 1 s clips, against plain audiomentations.

The baseline is the closest plain audiomentations `Compose` (global RNG, noise and impulse responses read from
files, as that library does): Shift, ApplyImpulseResponse, AddBackgroundNoise, Gain, BandPassFilter with the
same probabilities. Both run single-threaded in this one process, on the same clips and noise recordings.

    .venv/bin/python benchmarks/augment_speed.py [--clips 400] [--repeats 3]

Prints a table and writes benchmarks/results/augment_speed.json (atomically).
"""

from __future__ import annotations

import os

# One core: pin the BLAS/OpenMP pools before numpy loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from context import cpu_name, git_commit  # noqa: E402

from kwslib.augment import (  # noqa: E402
    DEVICE_HIGH_CUT_HZ,
    DEVICE_LOW_CUT_HZ,
    DRR_RANGE_DB,
    RT60_RANGE_S,
    Augmenter,
    clip_rng,
    synthetic_rir,
)
from kwslib.config import SAMPLE_RATE, AugmentConfig  # noqa: E402
from kwslib.evaluation import write_json_atomic  # noqa: E402
from kwslib.labels import BACKGROUND_NOISE_DIR  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "augment_speed.json"
NOISE_FILES = 6  # like Speech Commands' _background_noise_/
NOISE_SECONDS = 60.0
IR_FILES = 16
CLIP_POOL = 64


def speech_like_clips(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """1 s clips: a harmonic burst under a Gaussian envelope at a random time, pitch and level."""
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    clips = []
    for _ in range(n):
        f0, centre, amp = rng.uniform(90, 250), rng.uniform(0.3, 0.7), rng.uniform(0.05, 0.5)
        env = np.exp(-(((t - centre) / 0.12) ** 2))
        x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12))
        clips.append((amp * env * x / np.max(np.abs(x))).astype(np.float32))
    return clips


def write_inputs(root: Path, rng: np.random.Generator) -> tuple[Path, Path, Path]:
    """A Speech Commands-like folder with background noise, and a folder of synthetic impulse responses."""
    noise_dir = root / "sc" / BACKGROUND_NOISE_DIR
    noise_dir.mkdir(parents=True)
    n = int(NOISE_SECONDS * SAMPLE_RATE)
    for i in range(NOISE_FILES):
        white = rng.standard_normal(n)
        coloured = np.cumsum(white) * 0.02 if i % 2 else white  # some white, some brown-ish
        coloured -= np.convolve(coloured, np.ones(801) / 801, mode="same") if i % 2 else 0.0
        sf.write(noise_dir / f"noise_{i}.wav", 0.1 * coloured / np.std(coloured), SAMPLE_RATE, subtype="PCM_16")
    ir_dir = root / "irs"
    ir_dir.mkdir()
    for i in range(IR_FILES):
        ir = synthetic_rir(SAMPLE_RATE, rng.uniform(*RT60_RANGE_S), rng.uniform(*DRR_RANGE_DB), rng)
        sf.write(ir_dir / f"ir_{i}.wav", ir / np.max(np.abs(ir)), SAMPLE_RATE, subtype="FLOAT")
    return root / "sc", noise_dir, ir_dir


def audiomentations_pipeline(cfg: AugmentConfig, noise_dir: Path, ir_dir: Path):
    from audiomentations import AddBackgroundNoise, ApplyImpulseResponse, BandPassFilter, Compose, Gain, Shift

    low, high = DEVICE_LOW_CUT_HZ, DEVICE_HIGH_CUT_HZ
    centre = ((low[0] + high[0]) / 2, (low[1] + high[1]) / 2)
    return Compose(
        [
            Shift(-cfg.shift_ms / 1000, cfg.shift_ms / 1000, shift_unit="seconds", rollover=False, p=1.0),
            ApplyImpulseResponse(ir_path=str(ir_dir), p=cfg.reverb_prob),
            AddBackgroundNoise(str(noise_dir), min_snr_db=cfg.min_snr_db, max_snr_db=cfg.max_snr_db, p=cfg.noise_prob),
            Gain(-cfg.gain_db, cfg.gain_db, p=1.0),
            BandPassFilter(centre[0], centre[1], 0.5, 1.9, min_rolloff=12, max_rolloff=24, p=cfg.device_prob),
        ]
    )


def clips_per_second(fn, clips: list[np.ndarray], n: int, repeats: int) -> dict:
    for i in range(min(20, n)):  # warm-up: lazy imports, librosa/numba, file-duration caches
        fn(clips[i % len(clips)], i)
    rates = []
    for r in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            fn(clips[i % len(clips)], r * n + i)
        rates.append(n / (time.perf_counter() - start))
    return {"clips_per_s": float(np.median(rates)), "runs": [round(x, 1) for x in rates], "clips_per_run": n}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=400, help="clips per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per pipeline (the median is reported)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    if args.clips < 1 or args.repeats < 1:
        parser.error(f"--clips {args.clips} and --repeats {args.repeats} must be at least 1")

    rng = np.random.default_rng(0)
    clips = speech_like_clips(CLIP_POOL, rng)
    defaults = AugmentConfig()
    all_on = dataclasses.replace(defaults, noise_prob=1.0, reverb_prob=1.0, device_prob=1.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sc_root, noise_dir, ir_dir = write_inputs(Path(tmp), rng)
        for cfg_name, cfg in (("defaults", defaults), ("all stages on", all_on)):
            ours = Augmenter.from_folder(cfg, sc_root)
            theirs = audiomentations_pipeline(cfg, noise_dir, ir_dir)
            np.random.seed(0)
            import random

            random.seed(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # audiomentations warns about clipping-prone gains etc.
                candidates = (
                    ("kwslib Augmenter (explicit rng)", lambda x, i, a=ours: a(x, clip_rng(0, 0, i))),
                    (
                        "audiomentations Compose (global RNG)",
                        lambda x, i, c=theirs: c(samples=x, sample_rate=SAMPLE_RATE),
                    ),
                )
                for name, fn in candidates:
                    result = clips_per_second(fn, clips, args.clips, args.repeats)
                    rows.append({"config": cfg_name, "pipeline": name, **result})

    base = {r["config"]: r["clips_per_s"] for r in rows if r["pipeline"].startswith("audiomentations")}
    for r in rows:
        r["speedup_vs_audiomentations"] = round(r["clips_per_s"] / base[r["config"]], 2)
    print(f"1 s clips at {SAMPLE_RATE} Hz, one core ({cpu_name()}), median of {args.repeats} x {args.clips} clips")
    print(f"{'config':<15} {'pipeline':<38} {'clips/s':>9} {'ms/clip':>8} {'speed-up':>9}")
    for r in rows:
        print(
            f"{r['config']:<15} {r['pipeline']:<38} {r['clips_per_s']:>9.0f} {1000 / r['clips_per_s']:>8.2f}"
            f" {r['speedup_vs_audiomentations']:>8.2f}x"
        )
    write_json_atomic(
        args.out,
        {
            "benchmark": "augment_speed",
            "unit": "clips per second per core (1 s clips)",
            "baseline": "audiomentations Compose with the same stages and probabilities, global RNG, files on disk",
            "results": rows,
            "settings": {
                "clips_per_run": args.clips,
                "repeats": args.repeats,
                "sample_rate": SAMPLE_RATE,
                "noise_files": NOISE_FILES,
                "noise_seconds": NOISE_SECONDS,
                "augment_config_defaults": dataclasses.asdict(defaults),
            },
            "context": {
                "commit": git_commit(),
                "cpu": cpu_name(),
                "python": platform.python_version(),
                "numpy": version("numpy"),
                "scipy": version("scipy"),
                "audiomentations": version("audiomentations"),
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
