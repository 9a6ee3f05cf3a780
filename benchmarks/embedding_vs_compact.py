"""The embedding model (frozen speech_embedding + a small head) against compact (a log-mel TC-ResNet from scratch).

1. Voice-held-out: the dataset's own split (`kws synth` holds out whole voice groups for validation and test).
2. Engine-held-out, for each of --held-out-engines: test = every clip of that TTS engine's speakers, validation =
   the other engines' validation voices, train = every other clip. Built as a folder of symlinks to the data's word
   folders with new list files; speakers' engines come from the data's synth.json.
Both models train on the same data with the same augmentation and `kws train` defaults (each its own default
learning rate), with make demo's early stopping (patience 10). The voice-held-out checkpoints are then scored by
`kwslib.evaluation.evaluate` under --conditions (level, noise); "non-keywords accepted" counts the test split's
_unknown_ and _silence_ clips predicted as a keyword (clean audio). Size: parameters (trained / frozen) and the
checkpoint's safetensors file. Latency: one 1 s clip at batch 1 on one thread, PyTorch checkpoint and the exported
ONNX graph (onnxruntime; `kwslib.export.export_onnx`, whose fp32 parity check is recorded), median of --latency-runs.
   Streams: `kws stream-eval` on a --stream-minutes stream of the test split's voices in background noise (the same
   stream for both models; the embedding model both incrementally and on whole windows): miss rate and false
   accepts/h at threshold 0.5, and the miss rate at the lowest threshold with no false accept in the stream.
   Live cost: the detector fed a 60 s stream one 0.1 s hop at a time on one thread, process CPU time over audio
   time (% of one core), for PyTorch and onnxruntime (and the embedding model incrementally).
3. The embedding model's training speed: samples/s of its training steps on the feature cache (the voice-held-out
   run) against the uncached path (--feature-cache-epochs 0 for --uncached-steps steps, same data and batch), and
   the cache's own build time.

Accuracies are on one seed: with ~470 test clips, one clip is 0.2 points, so differences under ~2 points are noise.

    .venv/bin/python benchmarks/embedding_vs_compact.py [--data data/synth] [--held-out-engines festival]
        [--models compact,embedding] [--no-augment] [--compact-epochs 30] [--embedding-epochs 30]
        [--feature-cache-epochs 4] [--stream-minutes 30] [--work runs/embedding_vs_compact] [--reuse]

Prints a table and writes benchmarks/results/embedding_vs_compact.json (atomically).
"""

from __future__ import annotations

import os

# Pin the BLAS pools before numpy loads; training sets its own torch threads (kwslib.train.torch_threads).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from context import cpu_name, load1, machine_context  # noqa: E402

from kwslib.config import SAMPLE_RATE, AugmentConfig, DataConfig, EvalConfig, StreamConfig, TrainConfig  # noqa: E402
from kwslib.evaluation import evaluate, write_json_atomic  # noqa: E402
from kwslib.labels import SILENCE, UNKNOWN  # noqa: E402
from kwslib.train import METRICS_FILE, train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "embedding_vs_compact.json"
MODELS = ("compact", "embedding")
CONDITIONS = "clean,level:-15dB,white@10dB,white@5dB,white@0dB,babble@10dB,babble@5dB,babble@0dB"
LOW_SNR = ("white@10dB", "white@5dB", "white@0dB", "babble@10dB", "babble@5dB", "babble@0dB")  # "0-10 dB SNR"
STREAM_MINUTES = 30.0
COST_SECONDS = 60.0  # audio pushed hop by hop to measure the live detector's CPU cost
EARLY_STOPPING_PATIENCE = 10  # as make demo
LIST_FILES = ("validation_list.txt", "testing_list.txt")


def reset_accelerate() -> None:
    # Every run makes an Accelerator; its process-wide singletons must not carry one run's settings into the next.
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def engine_held_out_folder(data: Path, engine: str, out: Path) -> dict:
    """A Speech Commands folder over `data` whose test split is every clip of `engine`'s speakers, validation the
    other engines' validation speakers, train the rest. Returns the clip counts per split (all words)."""
    speakers = json.loads((data / "synth.json").read_text())["speakers"]
    engines = sorted({s["engine"] for s in speakers.values()})
    if engine not in engines:
        raise SystemExit(f"--held-out-engines {engine}: {data} has speakers of {', '.join(engines)} only")
    out.mkdir(parents=True, exist_ok=True)
    validation, testing, train_count = [], [], 0
    for sub in sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith(".")):
        link = out / sub.name
        if not link.exists():
            link.symlink_to(sub.resolve(), target_is_directory=True)
        if sub.name.startswith("_"):  # _background_noise_
            continue
        for wav in sorted(sub.glob("*.wav")):
            speaker = speakers.get(wav.name.split("_nohash_")[0])
            if speaker is None:
                raise SystemExit(f"{wav}: speaker not in {data / 'synth.json'}; regenerate the data with kws synth")
            rel = f"{sub.name}/{wav.name}"
            if speaker["engine"] == engine:
                testing.append(rel)
            elif speaker["split"] == "validation":
                validation.append(rel)
            else:
                train_count += 1
    for name, rows in zip(LIST_FILES, (validation, testing)):
        (out / name).write_text("".join(f"{r}\n" for r in rows))
    return {"train": train_count, "validation": len(validation), "test": len(testing)}


def train_run(
    model: str, data: Path, out: Path, epochs: int, cache_epochs: int, augment: AugmentConfig, reuse: bool, **extra
) -> dict:
    """`kwslib.train.train` with make demo's settings; the run's metrics.json (reused when asked and present)."""
    if reuse and (out / METRICS_FILE).exists():
        return json.loads((out / METRICS_FILE).read_text())
    train_cfg = TrainConfig(
        model=model,
        out=str(out),
        epochs=epochs,
        early_stopping_patience=EARLY_STOPPING_PATIENCE,
        feature_cache_epochs=cache_epochs,
        **extra,
    )
    reset_accelerate()
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        train(DataConfig(source=str(data), protocol="sc12"), train_cfg, augment, progress=False)
    (out / "train_stdout.txt").write_text(log.getvalue())
    return json.loads((out / METRICS_FILE).read_text())


def non_keywords_accepted(split: dict, labels: list[str]) -> dict:
    """Test _unknown_/_silence_ clips predicted as one of the keywords, from the confusion matrix."""
    matrix = np.asarray(split["confusion_matrix"])
    others = [labels.index(x) for x in (UNKNOWN, SILENCE) if x in labels]
    keywords = [i for i in range(len(labels)) if i not in others]
    accepted = int(matrix[np.ix_(others, keywords)].sum())
    total = int(matrix[others].sum())
    return {"accepted": accepted, "clips": total, "rate": accepted / max(total, 1)}


def latency_ms(classifier, runs: int) -> float:
    """Median milliseconds to score one 1 s clip (batch 1)."""
    clip = (0.1 * np.random.default_rng(0).standard_normal((1, SAMPLE_RATE))).astype(np.float32)
    for _ in range(5):
        classifier.probabilities(clip)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        classifier.probabilities(clip)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def size_and_latency(model_dir: Path, runs: int) -> dict:
    from kwslib.export import export_onnx
    from kwslib.inference import Classifier
    from kwslib.models import load_model

    model, _, _ = load_model(model_dir)
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # What the checkpoint holds (compact's DFT kernels are recomputed from its config, so they are not counted).
    total = sum(v.numel() for v in model.state_dict().values() if v.is_floating_point())
    onnx_path = model_dir.with_suffix(".onnx")
    with contextlib.redirect_stdout(io.StringIO()):
        exported = export_onnx(model_dir, onnx_path)
    torch.set_num_threads(1)
    return {
        "parameters_trained": int(trained),
        "parameters_frozen": int(total - trained),
        "checkpoint_mb": round((model_dir / "model.safetensors").stat().st_size / 1e6, 2),
        "onnx_mb": round(onnx_path.stat().st_size / 1e6, 2),
        "onnx_max_abs_logit_diff": exported.parity["fp32"]["max_abs_logit_diff"],
        "latency_ms_torch": round(latency_ms(Classifier.load(model_dir, threads=1), runs), 2),
        "latency_ms_onnx": round(latency_ms(Classifier.load(onnx_path, threads=1), runs), 2),
    }


def stream_runs(model_dir: Path, data: Path, out: Path, minutes: float, embedding: bool) -> dict:
    """`kws stream-eval` on a `minutes` stream of the voice-held-out test split (the same stream for every model):
    miss rate and false accepts/h at threshold 0.5, the lowest threshold with no false accept in the stream
    (`target`: <= 0.5/h) and its miss rate, latency. Embedding models run incrementally and on whole windows."""
    from kwslib.inference import Classifier
    from kwslib.streaming import evaluate_stream

    clf = Classifier.load(model_dir, threads=1)
    results = {}
    for mode in (True, False) if embedding else (None,):
        name = {True: "incremental", False: "windows", None: "windows"}[mode]
        cfg = StreamConfig(model=str(model_dir), data=str(data), minutes=minutes, out=str(out / f"stream-{name}"),
                           incremental=mode)  # fmt: skip
        section = evaluate_stream(cfg, classifier=clf, progress=False).stream
        d, t = section["default"], section["target"]
        results[name] = {
            "miss_rate_at_0.5": d["miss_rate"],
            "false_accepts_per_hour_at_0.5": d["false_accepts_per_hour"],
            "latency_ms_median": d["latency_ms_median"],
            "zero_fa_threshold": t["threshold"],
            "zero_fa_miss_rate": t["miss_rate"],
            "keywords": d["keywords"],
            "non_keywords": d["non_keywords"],
            "hours": d["hours"],
            "real_time_factor_offline": section["runtime"]["real_time_factor"],
        }
    return results


def live_cost(model: str | Path, data: Path, incremental: bool | None, seconds: float = COST_SECONDS) -> dict:
    """CPU a live detector takes, in % of one core: a `seconds` stream pushed one 0.1 s hop at a time (as a
    microphone delivers it), process CPU time over audio time, one thread. Offline batching does not apply."""
    from kwslib.evaluation import data_config_for
    from kwslib.inference import Classifier
    from kwslib.streaming import StreamingDetector, make_stream

    clf = Classifier.load(model, threads=1)
    torch.set_num_threads(1)
    cfg = StreamConfig(model=str(model), data=str(data), minutes=seconds / 60.0)
    keywords = [label for label in clf.labels if label not in (SILENCE, UNKNOWN)]
    samples, _ = make_stream(data_config_for(clf, str(data), unknown_percentage=100.0), keywords, cfg, SAMPLE_RATE)
    detector = StreamingDetector(clf, max_backlog_seconds=2.0, incremental=incremental)
    hop = detector.hop_samples
    for i in range(0, 2 * SAMPLE_RATE, hop):  # warm-up
        detector.push(samples[i : i + hop])
    detector.reset()
    cpu = time.process_time()
    for i in range(0, len(samples), hop):
        detector.push(samples[i : i + hop])
    cpu = time.process_time() - cpu
    return {
        "percent_of_one_core": round(100 * cpu / (len(samples) / SAMPLE_RATE), 2),
        "backend": clf.backend,
        "incremental": detector.incremental is not None,
        "windows": detector.scored_windows,
        "dropped_windows": detector.dropped_windows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/synth", help="a kws synth folder (default: data/synth, make demo's)")
    parser.add_argument(
        "--held-out-engines", default="festival", help="comma list of TTS engines to hold out, one run pair each"
    )
    parser.add_argument("--compact-epochs", type=int, default=30, help="compact's epochs (default: 30, as make demo)")
    parser.add_argument("--embedding-epochs", type=int, default=30, help="embedding's epochs (default: 30)")
    parser.add_argument(
        "--feature-cache-epochs", type=int, default=TrainConfig().feature_cache_epochs, help="embedding's cached copies"
    )
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of models to compare")
    parser.add_argument(
        "--augment", action=argparse.BooleanOptionalAction, default=True, help="train with kwslib's augmentation"
    )
    parser.add_argument("--conditions", default=CONDITIONS, help=f"evaluation conditions (default: {CONDITIONS})")
    parser.add_argument("--uncached-steps", type=int, default=20, help="steps of the uncached speed run (default: 20)")
    parser.add_argument("--latency-runs", type=int, default=50, help="timed single-clip runs per back end")
    parser.add_argument(
        "--stream-minutes", type=float, default=STREAM_MINUTES, help=f"stream-eval length (default: {STREAM_MINUTES})"
    )
    parser.add_argument("--work", type=Path, default=Path("runs/embedding_vs_compact"), help="run folders")
    parser.add_argument("--reuse", action="store_true", help="reuse finished runs in --work instead of retraining")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "synth.json").is_file():
        parser.error(f"--data {data} has no synth.json; make it with `kws synth --out {data}` (or make demo)")
    for name in ("compact_epochs", "embedding_epochs", "uncached_steps", "latency_runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} must be at least 1")
    engines = [e.strip() for e in args.held_out_engines.split(",") if e.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or set(models) - set(MODELS):
        parser.error(f"--models {args.models}: choose from {', '.join(MODELS)}")
    augment = AugmentConfig(enabled=args.augment)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    load_before = load1()
    started = time.perf_counter()
    epochs = {"compact": args.compact_epochs, "embedding": args.embedding_epochs}

    splits = {"voice": {"data": data, "counts": None}}
    for engine in engines:
        folder = args.work / f"data-without-{engine}"
        splits[f"engine:{engine}"] = {"data": folder, "counts": engine_held_out_folder(data, engine, folder)}

    rows = {}
    for split, info in splits.items():
        for model in models:
            out = args.work / f"{split.replace(':', '-')}-{model}"
            load = load1()
            t0 = time.perf_counter()
            metrics = train_run(model, info["data"], out, epochs[model], args.feature_cache_epochs, augment, args.reuse)
            train_seconds = round(time.perf_counter() - t0, 1)
            reset_accelerate()
            result = evaluate(
                EvalConfig(model=str(out / "model"), out=str(out / "eval"), report=False, mistakes=0,
                           conditions=args.conditions if split == "voice" else "clean"),
                DataConfig(source=str(info["data"]), protocol="sc12"),
                progress=False,
            )  # fmt: skip
            test = result.metrics["test"]
            row = {
                "load1_before": load,
                "wall_seconds": train_seconds,
                "best_epoch": metrics["best_epoch"],
                "train": metrics["train"],
                "validation_accuracy": metrics["validation"]["accuracy"],
                "test_accuracy": test["accuracy"],
                "test_balanced_accuracy": test["balanced_accuracy"],
                "test_clips": test["clips"],
                "non_keywords_accepted": non_keywords_accepted(test, result.metrics["labels"]),
                "conditions": {
                    c["name"]: {"accuracy": c["accuracy"], "balanced_accuracy": c["balanced_accuracy"]}
                    for c in result.metrics["evaluation"]["conditions"]
                },
            }
            if split == "voice":
                row.update(size_and_latency(out / "model", args.latency_runs))
                row["stream"] = stream_runs(out / "model", data, out, args.stream_minutes, model == "embedding")
                modes = {"torch": None, "onnx": None} if model == "compact" else {
                    "torch incremental": True, "torch windows": False, "onnx": None}  # fmt: skip
                row["live_cost"] = {
                    name: live_cost(out / "model" if name.startswith("torch") else out / "model.onnx", data, mode)
                    for name, mode in modes.items()
                }
            rows[f"{split}/{model}"] = row
            print(f"  {split} {model}: test accuracy {row['test_accuracy']:.4f} ({row['wall_seconds']:.0f} s)")

    speed = None
    if "embedding" in models:
        # The embedding model's training steps without the cache: same data and batch, waveforms through the front end.
        reset_accelerate()
        uncached = train_run(
            "embedding", data, args.work / "voice-embedding-uncached", 10_000, 0, augment, args.reuse,
            max_steps=args.uncached_steps, checkpoint_every_steps=args.uncached_steps + 1,
        )  # fmt: skip
        cached = rows["voice/embedding"]["train"]
        speed = {
            "cached_samples_per_second": cached["samples_per_second"],
            "uncached_samples_per_second": uncached["train"]["samples_per_second"],
            "ratio_cached_over_uncached": cached["samples_per_second"] / uncached["train"]["samples_per_second"],
            "cache": cached.get("feature_cache"),
            "uncached_steps": uncached["train"]["steps"],
        }
    load_after = load1()
    seconds = time.perf_counter() - started

    def pct(x):
        return f"{100 * x:.1f}"

    print(f"{cpu_name()}, {os.cpu_count()} CPUs, load {load_before:.2f} -> {load_after:.2f}, {seconds:.0f} s")
    header = f"{'':34}" + "".join(f"{m:>14}" for m in models)
    print(header)

    def line(what, fn):
        print(f"{what:34}" + "".join(f"{fn(m):>14}" for m in models))

    voice = {m: rows[f"voice/{m}"] for m in models}
    line(
        "voice-held-out acc / balanced",
        lambda m: f"{pct(voice[m]['test_accuracy'])} / {pct(voice[m]['test_balanced_accuracy'])}",
    )
    for engine in engines:
        r = {m: rows[f"engine:{engine}/{m}"] for m in models}
        line(f"{engine}-held-out acc / balanced",
             lambda m, r=r: f"{pct(r[m]['test_accuracy'])} / {pct(r[m]['test_balanced_accuracy'])}")  # fmt: skip
    line("non-keywords accepted (voice)", lambda m: "{accepted}/{clips}".format(**voice[m]["non_keywords_accepted"]))
    for engine in engines:
        r = {m: rows[f"engine:{engine}/{m}"] for m in models}
        line(f"non-keywords accepted ({engine})",
             lambda m, r=r: "{accepted}/{clips}".format(**r[m]["non_keywords_accepted"]))  # fmt: skip
    for name in voice[models[0]]["conditions"]:
        if name != "clean":
            line(f"acc {name}", lambda m, name=name: pct(voice[m]["conditions"][name]["accuracy"]))
    line("acc 0-10 dB SNR (mean of 6)",
         lambda m: pct(statistics.mean(voice[m]["conditions"][c]["accuracy"] for c in LOW_SNR)))  # fmt: skip
    for m in models:
        for name, st in voice[m]["stream"].items():
            print(
                f"stream {m} ({name}, {st['hours'] * 60:.0f} min, {st['keywords']} keywords, "
                f"{st['non_keywords']} non-keywords): at 0.5 miss {pct(st['miss_rate_at_0.5'])} %, "
                f"{st['false_accepts_per_hour_at_0.5']:.0f} FA/h, latency {st['latency_ms_median']} ms; "
                f"no false accept from threshold {st['zero_fa_threshold']} with miss "
                f"{pct(st['zero_fa_miss_rate']) if st['zero_fa_miss_rate'] is not None else '-'} %"
            )
        costs = ", ".join(f"{k} {v['percent_of_one_core']:.1f} %" for k, v in voice[m]["live_cost"].items())
        print(f"live detector CPU {m} (hop 0.1 s, one thread, % of one core): {costs}")
    line(
        "params trained / frozen",
        lambda m: f"{voice[m]['parameters_trained'] / 1e3:.0f}k/{voice[m]['parameters_frozen'] / 1e3:.0f}k",
    )
    line("checkpoint MB", lambda m: f"{voice[m]['checkpoint_mb']:.2f}")
    line("latency ms / 1 s clip, torch", lambda m: f"{voice[m]['latency_ms_torch']:.1f}")
    line("latency ms / 1 s clip, onnx", lambda m: f"{voice[m]['latency_ms_onnx']:.1f}")
    line("train wall s (voice; cache incl.)", lambda m: f"{voice[m]['wall_seconds']:.0f}")
    if speed:
        print(
            f"embedding training steps: {speed['cached_samples_per_second']:.0f} samples/s cached vs "
            f"{speed['uncached_samples_per_second']:.0f} uncached (x{speed['ratio_cached_over_uncached']:.0f}); "
            f"cache ({speed['cache']['copies']} training cop{'y' if speed['cache']['copies'] == 1 else 'ies'} + "
            f"validation/test, {speed['cache']['clips']} clips) built in {speed['cache']['seconds']:.0f} s"
        )

    write_json_atomic(
        args.out,
        {
            "benchmark": "embedding_vs_compact",
            "unit": "accuracy on held-out voices / engines (sc12, 1 s clips); latency ms per 1 s clip",
            "baselines": {"model": "compact (log-mel TC-ResNet trained from scratch)"},
            "runs": rows,
            "embedding_training_speed": speed,
            "settings": {
                "data": str(data),
                "protocol": "sc12",
                "splits": {k: {"data": str(v["data"]), "clips_all_words": v["counts"]} for k, v in splits.items()},
                "epochs": epochs,
                "early_stopping_patience": EARLY_STOPPING_PATIENCE,
                "feature_cache_epochs": args.feature_cache_epochs,
                "train_config": dataclasses.asdict(TrainConfig()),
                "models": models,
                "augment_config": dataclasses.asdict(augment),
                "conditions": args.conditions,
                "latency": f"batch 1, 1 thread, median of {args.latency_runs}",
                "stream_minutes": args.stream_minutes,
                "live_cost": f"{COST_SECONDS:.0f} s stream pushed hop by hop (0.1 s), process CPU / audio time",
                "uncached_steps": args.uncached_steps,
            },
            "context": machine_context(load_before, seconds=seconds, packages=("torch", "transformers", "onnxruntime")),
        },
    )
    print(f"wrote {args.out} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
