"""Training throughput on CPU: our accelerate loop against `transformers.Trainer`, and the data pipeline against the model.

1. Loop: `kwslib.train.train` against `transformers.Trainer`, both fed the same `ClipDataset` (no augmentation) of the
   same data, the same `build_model` model and kwargs, `Collator`, batch size, data-loader workers, optimizer
   (torch AdamW, not fused; lr, weight decay, warm-up + cosine), gradient clipping and step count; the Trainer never
   evaluates or saves. Both are timed by one global `torch.optim` step post-hook (a timestamp per optimizer step,
   the same code in both loops): clips/s over steps `warmup+1..steps`, leaving out the steps that cross an epoch
   end (where our loop validates and checkpoints by design, and both restart their data loader). Each setting runs
   `--repeats` times per loop in ABBA order, after an untimed warm-up of every model. Our loop's own `metrics.json`
   figure (whole run: first steps, validation and checkpoints included) is reported beside it.
2. Pipeline vs model, per core: augmented clips/s that `ClipDataset` + the default `Augmenter` (+ the model's
   `Collator`) deliver in this one process, against the clips/s one core of training steps consumes
   (forward, backward, gradient clipping, AdamW) on pre-built batches of those clips; the same steps on two
   intra-op threads (torch's default on a 2-core machine) are reported against one.

The loops run on `--threads` torch intra-op threads (default 1: per core, and immune to the collapse two threads
suffer when another process holds a core). Every claim is a ratio within one run; absolute clips/s depend on the
machine and its load, so the 1-minute load average is recorded before each measurement.

    .venv/bin/python benchmarks/train_throughput.py [--data DIR] [--steps 60] [--batch-size 32] [--workers 0,2]
        [--models compact,wav2vec2-tiny] [--repeats 2] [--threads 1]

Prints a table and writes benchmarks/results/train_throughput.json (atomically).
"""

from __future__ import annotations

import os

# Pin the BLAS pools before numpy loads; torch's intra-op threads are set from --threads below.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from context import cpu_name, git_commit, git_modified_files, load1  # noqa: E402
from torch.optim.optimizer import register_optimizer_step_post_hook  # noqa: E402

from kwslib.augment import Augmenter  # noqa: E402
from kwslib.config import SAMPLE_RATE, AugmentConfig, DataConfig, TrainConfig  # noqa: E402
from kwslib.data import labels_of, load_data, load_noises  # noqa: E402
from kwslib.evaluation import write_json_atomic  # noqa: E402
from kwslib.models import BUILTIN_MODELS, build_model  # noqa: E402
from kwslib.train import LOG_EVERY_STEPS, METRICS_FILE, ClipDataset, Collator, default_lr, train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "train_throughput.json"
REPO = Path(__file__).resolve().parent.parent
SYNTH_SPEAKERS = 40
PIPELINE_CLIPS = 400  # clips decoded + augmented for the pipeline rate
PIPELINE_WARMUP_CLIPS = 16
MODEL_BATCHES = 4  # distinct pre-built batches cycled through by the model-rate loop
MODEL_WARMUP_STEPS = 3
MODEL_STEPS = 20
PROCESS_WARMUP_STEPS = 15  # untimed training steps per model before anything is timed
MODEL_STEPS_TWO_THREADS = 5  # few: on a contended 2-core machine two intra-op threads can be very slow


class StepClock:
    """perf_counter() after every optimizer step in this process (a global torch hook, so any loop is timed alike)."""

    def __init__(self):
        self.stamps: list[float] = []
        self._handle = None

    def __enter__(self) -> StepClock:
        self.stamps = []
        self._handle = register_optimizer_step_post_hook(lambda *_: self.stamps.append(time.perf_counter()))
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()


def timed_intervals(stamps: list[float], warmup: int, steps_per_epoch: int) -> tuple[dict, dict]:
    """Step durations of steps warmup+1..N: (kept, crossing), crossing being the steps that follow an epoch end."""
    # stamps[k-1] is the end of step k, so step k took stamps[k-1] - stamps[k-2].
    intervals = {k: stamps[k - 1] - stamps[k - 2] for k in range(warmup + 1, len(stamps) + 1)}
    crossing = {k: dt for k, dt in intervals.items() if (k - 1) % steps_per_epoch == 0}
    return {k: dt for k, dt in intervals.items() if k not in crossing}, crossing


def pooled_rate(runs: list[dict], batch_size: int) -> dict:
    """Clips/s over the kept steps of all repeats of one loop, with per-step statistics (noise check)."""
    kept = [dt for run in runs for dt in run["kept"].values()]
    if not kept:
        raise ValueError("no timed steps left: raise --steps or lower --warmup-steps")
    median = statistics.median(kept)
    return {
        "clips_per_s": batch_size * len(kept) / sum(kept),
        "clips_per_s_median_step": batch_size / median,
        "clips_per_s_per_repeat": [
            round(batch_size * len(run["kept"]) / sum(run["kept"].values()), 1) for run in runs if run["kept"]
        ],
        "timed_steps": len(kept),
        "timed_seconds": round(sum(kept), 3),
        "step_ms_median": round(1000 * median, 2),
        "step_ms_p90": round(1000 * float(np.percentile(kept, 90)), 2),
        "epoch_crossing_steps": sorted(runs[0]["crossing"]),
        # What an epoch end costs beyond a normal step, per repeat: validation + checkpoints (ours), loader restart
        # (both).
        "epoch_end_extra_seconds": [round(sum(dt - median for dt in run["crossing"].values()), 3) for run in runs],
        "load1_before": [run["load1_before"] for run in runs],
    }


def reset_accelerate() -> None:
    # Both loops make an Accelerator; its process-wide singletons must not carry one run's settings into the next.
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def run_ours(data_cfg: DataConfig, model: str, batch_size: int, steps: int, workers: int, out: Path) -> dict:
    """`kwslib.train.train` for `steps` steps, augmentation off, no early stop, no step checkpoints."""
    train_cfg = TrainConfig(
        model=model,
        out=str(out),
        epochs=10_000,  # max_steps decides
        max_steps=steps,
        batch_size=batch_size,
        early_stopping_patience=0,
        checkpoint_every_steps=steps + 1,
        num_workers=workers,
    )
    reset_accelerate()
    with StepClock() as clock, contextlib.redirect_stdout(io.StringIO()):
        train(data_cfg, train_cfg, AugmentConfig(enabled=False), progress=False)
    metrics = json.loads((out / METRICS_FILE).read_text())
    return {"stamps": clock.stamps, "metrics_json_clips_per_s": metrics["train"]["samples_per_second"]}


def run_trainer(data_cfg: DataConfig, model_name: str, batch_size: int, steps: int, workers: int, out: Path) -> dict:
    """`transformers.Trainer` with what `train` does: same model kwargs, data, optimizer, schedule and clipping."""
    from accelerate.utils import set_seed
    from transformers import PrinterCallback, Trainer, TrainingArguments

    defaults = TrainConfig()
    dataset = load_data(data_cfg)
    set_seed(defaults.seed)
    model, feature_extractor = build_model(
        model_name,
        labels_of(dataset),
        dropout=defaults.dropout,
        freeze_feature_encoder=defaults.freeze_feature_encoder,
        from_scratch=defaults.from_scratch,
        spec_augment=False,  # as train() builds it with augmentation off
    )
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        learning_rate=default_lr(model_name),
        # Trainer exempts biases and LayerNorms by name (so it decays BatchNorm weights) where train() exempts every
        # 1-D tensor; a multiply on a few small tensors, no matter for speed.
        weight_decay=defaults.weight_decay,
        warmup_steps=defaults.warmup_ratio,
        lr_scheduler_type="cosine",
        max_grad_norm=defaults.max_grad_norm,
        optim="adamw_torch",  # train()'s torch.optim.AdamW; Trainer's default here would be the fused one
        dataloader_num_workers=workers,
        dataloader_pin_memory=False,  # train() does not pin (and there is no GPU to pin for)
        remove_unused_columns=False,  # the dataset yields (samples, label) tuples; Collator makes the dict
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=LOG_EVERY_STEPS,  # train() logs the loss every LOG_EVERY_STEPS steps too
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        seed=defaults.seed,
    )
    clip_samples = int(round(data_cfg.clip_seconds * SAMPLE_RATE))
    reset_accelerate()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=ClipDataset(dataset["train"], clip_samples),
        data_collator=Collator(feature_extractor),
    )
    trainer.remove_callback(PrinterCallback)  # its log lines would interleave with the table
    with StepClock() as clock:
        trainer.train()
    return {"stamps": clock.stamps}


def augmented_clips(data_cfg: DataConfig, split) -> ClipDataset:
    """The training clips as train() augments them: default AugmentConfig, the source's non-silent noises."""
    noises = [x for x in load_noises(data_cfg) if len(x) and np.abs(x).max() > 0]
    cfg = AugmentConfig() if noises else dataclasses.replace(AugmentConfig(), noise_prob=0.0)
    return ClipDataset(split, int(round(data_cfg.clip_seconds * SAMPLE_RATE)), Augmenter(cfg, noises), seed=0)


def pipeline_pass(clips: ClipDataset, indices: range) -> tuple[list, float]:
    """Decode + augment `clips[i]` for `indices` in this process: (items, seconds)."""
    start = time.perf_counter()
    items = [clips[i] for i in indices]
    return items, time.perf_counter() - start


def collate_seconds_per_clip(collate: Collator, items: list, batch_size: int) -> float:
    batches = [items[i : i + batch_size] for i in range(0, len(items) - batch_size + 1, batch_size)]
    collate(batches[0])
    start = time.perf_counter()
    for b in batches:
        collate(b)
    return (time.perf_counter() - start) / (len(batches) * batch_size)


def model_rate(model, batches: list[dict], steps: int, warmup: int, max_grad_norm: float, lr: float) -> float:
    """Clips/s of forward + backward + gradient clipping + AdamW step on pre-built batches, in this thread setting."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay}], lr=lr)
    model.train()

    def step(batch):
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()

    for i in range(warmup):
        step(batches[i % len(batches)])
    start = time.perf_counter()
    for i in range(steps):
        step(batches[i % len(batches)])
    seconds = time.perf_counter() - start
    return steps * len(batches[0]["labels"]) / seconds


def comma_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help=f"dataset folder (default: a fresh `kws synth --speakers {SYNTH_SPEAKERS}`)")
    parser.add_argument("--protocol", default="sc35", help="label protocol (sc35 keeps every clip: longer epochs)")
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per loop run (default: 60)")
    parser.add_argument("--warmup-steps", type=int, default=10, help="first steps left out of the timing (default: 10)")
    parser.add_argument("--batch-size", type=int, default=32, help="clips per step (default: 32)")
    parser.add_argument(
        "--workers", type=comma_list, default=["0", "2"], help="data-loader workers to compare, e.g. 0,2"
    )
    parser.add_argument("--models", type=comma_list, default=["compact", "wav2vec2-tiny"], help="models to compare")
    parser.add_argument("--repeats", type=int, default=2, help="runs per loop and setting, in ABBA order (default: 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for the training loops")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    if args.steps <= args.warmup_steps + 1 or args.warmup_steps < 1:
        parser.error(f"--steps {args.steps} must exceed --warmup-steps {args.warmup_steps} (>= 1) by at least 2")
    for name in ("batch_size", "threads", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} must be at least 1")
    try:
        workers = [int(w) for w in args.workers]
    except ValueError:
        parser.error(f"--workers {','.join(args.workers)}: give whole numbers, e.g. 0,2")
    if any(w < 0 for w in workers):
        parser.error(f"--workers {','.join(args.workers)}: worker counts must be 0 or more")
    if args.data and not Path(args.data).is_dir():
        parser.error(f"--data {args.data} is not a folder; make one with `kws synth --out {args.data}` or omit --data")
    unknown = [m for m in args.models if m not in BUILTIN_MODELS]
    if unknown:
        parser.error(f"--models {','.join(unknown)} unknown; use built-in models: {', '.join(BUILTIN_MODELS)}")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    load_before = load1()
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="kws-train-throughput-") as tmp:
        tmp = Path(tmp)
        if args.data:
            data_dir = Path(args.data)
        else:
            data_dir = tmp / "data"
            subprocess.run(
                [str(Path(sys.executable).parent / "kws"), "synth", "--out", str(data_dir)]
                + ["--speakers", str(SYNTH_SPEAKERS), "--quiet"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        data_cfg = DataConfig(source=str(data_dir), protocol=args.protocol)
        dataset = load_data(data_cfg)
        labels = labels_of(dataset)
        n_train = len(dataset["train"])
        steps_per_epoch = math.ceil(n_train / args.batch_size)
        clip_samples = int(round(data_cfg.clip_seconds * SAMPLE_RATE))

        # Untimed: the first training steps in a process pay one-off costs (lazy initialisation, allocator growth)
        # that should not land on whichever loop happens to run first.
        plain = ClipDataset(dataset["train"], clip_samples)
        plain_items = [plain[i] for i in range(min(len(plain), MODEL_BATCHES * args.batch_size))]
        for model_name in args.models:
            model, feature_extractor = build_model(model_name, labels, spec_augment=False)
            batches = [Collator(feature_extractor)(plain_items[i : i + args.batch_size]) for i in (0, args.batch_size)]
            model_rate(model, batches, PROCESS_WARMUP_STEPS, 0, TrainConfig().max_grad_norm, default_lr(model_name))

        # 1. Our loop against Trainer: same model, data, batch, workers, optimizer, steps. Repeats run in ABBA order
        # (which loop goes first alternates), so a drift in the machine's load does not favour either loop.
        loop_rows = []
        for model_name in args.models:
            for w in workers:
                runs = {"ours": [], "trainer": []}
                for r in range(args.repeats):
                    for loop in ("ours", "trainer") if r % 2 == 0 else ("trainer", "ours"):
                        load = load1()
                        fn = run_ours if loop == "ours" else run_trainer
                        result = fn(
                            data_cfg, model_name, args.batch_size, args.steps, w, tmp / f"{loop}-{model_name}-w{w}-{r}"
                        )
                        stamps = result.pop("stamps")
                        if len(stamps) != args.steps:
                            raise RuntimeError(f"{loop} made {len(stamps)} optimizer steps, not {args.steps}")
                        kept, crossing = timed_intervals(stamps, args.warmup_steps, steps_per_epoch)
                        runs[loop].append({"kept": kept, "crossing": crossing, "load1_before": load, **result})
                ours, trainer = (
                    pooled_rate(runs["ours"], args.batch_size),
                    pooled_rate(runs["trainer"], args.batch_size),
                )
                ours["metrics_json_clips_per_s"] = [run["metrics_json_clips_per_s"] for run in runs["ours"]]
                loop_rows.append(
                    {
                        "model": model_name,
                        "workers": w,
                        "trainer": trainer,
                        "ours": ours,
                        "ratio_ours_over_trainer": ours["clips_per_s"] / trainer["clips_per_s"],
                        "ratio_ours_over_trainer_median_step": ours["clips_per_s_median_step"]
                        / trainer["clips_per_s_median_step"],
                        "ratio_ours_over_trainer_per_repeat": [
                            round(o / t, 3)
                            for o, t in zip(ours["clips_per_s_per_repeat"], trainer["clips_per_s_per_repeat"])
                        ],
                    }
                )

        # 2. Data pipeline (one process) against the model (one core of training steps). The pipeline runs in two
        # halves, before and after the model measurements, so both see the same stretch of machine load.
        clips = augmented_clips(data_cfg, dataset["train"])
        n = min(PIPELINE_CLIPS, len(clips))
        pipeline_pass(clips, range(min(PIPELINE_WARMUP_CLIPS, n)))
        load = load1()
        items, first_seconds = pipeline_pass(clips, range(n // 2))
        model_rows = []
        for model_name in args.models:
            model, feature_extractor = build_model(model_name, labels, spec_augment=True)  # as augmented training
            collate = Collator(feature_extractor)
            batches = [
                collate(items[i * args.batch_size : (i + 1) * args.batch_size])
                for i in range(min(MODEL_BATCHES, len(items) // args.batch_size))
            ]
            lr = default_lr(model_name)
            model_load = load1()
            torch.set_num_threads(1)
            one = model_rate(model, batches, MODEL_STEPS, MODEL_WARMUP_STEPS, TrainConfig().max_grad_norm, lr)
            torch.set_num_threads(2)
            two = model_rate(model, batches, MODEL_STEPS_TWO_THREADS, 1, TrainConfig().max_grad_norm, lr)
            torch.set_num_threads(args.threads)
            model_rows.append(
                {
                    "model": model_name,
                    "collate_ms_per_clip": collate_seconds_per_clip(collate, items, args.batch_size) * 1000,
                    "model_1_thread_clips_per_s": one,
                    "model_2_threads_clips_per_s": two,
                    "ratio_2_threads_over_1_thread": two / one,
                    "load1_before": model_load,
                }
            )
        more, second_seconds = pipeline_pass(clips, range(n // 2, n))
        items_rate = (len(items) + len(more)) / (first_seconds + second_seconds)
        pipeline = {
            "clips_per_s": items_rate,
            "clips_per_s_halves": [round(len(items) / first_seconds, 1), round(len(more) / second_seconds, 1)],
            "clips": len(items) + len(more),
            "load1_before": load,
        }
        for r in model_rows:
            r["pipeline_with_collate_clips_per_s"] = 1 / (1 / items_rate + r["collate_ms_per_clip"] / 1000)
            r["ratio_pipeline_over_model"] = r["pipeline_with_collate_clips_per_s"] / r["model_1_thread_clips_per_s"]
    load_after = load1()
    seconds = time.perf_counter() - started

    table = []
    for r in loop_rows:
        tag = f"{r['model']}, workers={r['workers']}"
        table.append((f"{tag}: transformers.Trainer", r["trainer"]["clips_per_s"], 1.0, "baseline"))
        table.append((f"{tag}: kwslib train()", r["ours"]["clips_per_s"], r["ratio_ours_over_trainer"], "/ Trainer"))
        table.append(
            (
                f"{tag}: kwslib metrics.json (whole run)",
                statistics.mean(r["ours"]["metrics_json_clips_per_s"]),
                statistics.mean(r["ours"]["metrics_json_clips_per_s"]) / r["trainer"]["clips_per_s"],
                "/ Trainer",
            )
        )
    table.append(("data pipeline: decode + augment, 1 process", pipeline["clips_per_s"], None, ""))
    for r in model_rows:
        m = r["model"]
        table.append((f"data pipeline + {m} Collator, 1 process", r["pipeline_with_collate_clips_per_s"], None, ""))
        table.append((f"{m} train step, 1 thread", r["model_1_thread_clips_per_s"], 1.0, "baseline"))
        table.append((f"  pipeline / {m} train step", None, r["ratio_pipeline_over_model"], "pipeline / model"))
        table.append(
            (
                f"{m} train step, 2 threads",
                r["model_2_threads_clips_per_s"],
                r["ratio_2_threads_over_1_thread"],
                "/ 1 thread",
            )
        )

    print(
        f"{cpu_name()}, {os.cpu_count()} CPUs, torch threads {args.threads}, batch {args.batch_size}, "
        f"{args.steps} steps (first {args.warmup_steps} untimed), {n_train} train clips = {steps_per_epoch} steps/epoch, "
        f"load {load_before:.2f} -> {load_after:.2f}"
    )
    print(f"{'what':<58} {'clips/s':>9} {'ratio':>7}  baseline")
    for what, rate, ratio, base in table:
        rate_s = f"{rate:9.1f}" if rate is not None else " " * 9
        ratio_s = f"{ratio:7.2f}" if ratio is not None else " " * 7
        print(f"{what:<58} {rate_s} {ratio_s}  {base}")

    write_json_atomic(
        args.out,
        {
            "benchmark": "train_throughput",
            "unit": "training clips per second (1 s clips), CPU",
            "baselines": {
                "loop": "transformers.Trainer with train()'s model, data, collator, optimizer, schedule and clipping",
                "pipeline": "one core of training steps (forward, backward, clipping, AdamW) on pre-built batches",
            },
            "loop": loop_rows,
            "pipeline": pipeline,
            "pipeline_vs_model": model_rows,
            "settings": {
                "data": args.data or f"kws synth --speakers {SYNTH_SPEAKERS} (fresh, in a temporary folder)",
                "protocol": args.protocol,
                "train_clips": n_train,
                "steps_per_epoch": steps_per_epoch,
                "batch_size": args.batch_size,
                "steps": args.steps,
                "repeats_abba": args.repeats,
                "process_warmup_steps_per_model": PROCESS_WARMUP_STEPS,
                "warmup_steps_untimed": args.warmup_steps,
                "workers": workers,
                "models": args.models,
                "torch_threads_loops": args.threads,
                "timing": "global torch.optim step post-hook; steps that follow an epoch end are left out",
                "augmentation_loops": False,
                "augment_config_pipeline": dataclasses.asdict(AugmentConfig()),
                "pipeline_clips": PIPELINE_CLIPS,
                "model_steps_1_thread": MODEL_STEPS,
                "model_steps_2_threads": MODEL_STEPS_TWO_THREADS,
            },
            "context": {
                "commit": git_commit(),
                "modified_files": git_modified_files(),
                "cpu": cpu_name(),
                "cpu_count": os.cpu_count(),
                "load1_before": load_before,
                "load1_after": load_after,
                "seconds": round(seconds, 1),
                "python": platform.python_version(),
                "torch": torch.__version__,
                "transformers": version("transformers"),
                "accelerate": version("accelerate"),
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        },
    )
    print(f"wrote {args.out} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
