"""One accelerate training loop for every model family: compact, wav2vec2, or any audio classifier.

Resumable: `accelerator.save_state` checkpoints (model, optimizer, scheduler, RNG and sampler states) plus our own
counters are written atomically every N steps and at every epoch end; `--resume` restarts from the newest one and
skips the batches already seen. Shuffling (accelerate's seedable sampler, seed + epoch) and augmentation (keyed by
seed, epoch and clip) depend on nothing else, so a resumed run sees the same batches as an uninterrupted one.
The same code runs under `accelerate launch` on several GPUs: only the main process writes files.

Feature cache: a model whose input features are a fixed function of the audio (`model.fixed_features`, e.g. the
`embedding` model's frozen speech_embedding front end) spends nearly all of a training step computing them. For such a
model the loop first computes them once (`cache_features`) for `feature_cache_epochs` augmented copies of the training
split, keyed like the uncached path by (seed, epoch, clip), and once for validation and test; it then trains on those
tensors, passed to the model as `input_features`. Epoch e reads copy e % feature_cache_epochs, so the first
`feature_cache_epochs` epochs see exactly the features of the uncached path, and later ones reuse their augmentations.
A resumed run rebuilds the same cache, so resuming keeps its guarantee.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from kwslib.audio import load_audio
from kwslib.config import SAMPLE_RATE, AugmentConfig, DataConfig, TrainConfig
from kwslib.evaluation import METRICS_SCHEMA, classification_metrics, write_json_atomic
from kwslib.labels import SILENCE

LOG_EVERY_STEPS = 10
CHECKPOINTS = "checkpoints"
STATE_FILE = "kws_trainer_state.json"
MODEL_DIR = "model"
BEST_DIR = "best_model"
LOG_FILE = "train_log.jsonl"
METRICS_FILE = "metrics.json"
DEFAULT_LR = {"compact": 3e-3, "embedding": 1e-3}
FALLBACK_LR = 3e-5  # pretrained transformers (wav2vec2 fine-tuning)


@dataclass
class TrainerState:
    """Our counters, saved next to accelerate's state in every checkpoint."""

    epoch: int = 0  # the epoch in progress (or the next one when batches_in_epoch == 0)
    batches_in_epoch: int = 0
    global_step: int = 0  # optimizer updates
    best_accuracy: float = -1.0
    best_epoch: int = -1
    bad_epochs: int = 0
    train_seconds: float = 0.0  # wall time, validation and checkpoints included
    step_seconds: float = 0.0  # time in training steps (data wait included), for samples_per_second
    train_samples: int = 0
    done: bool = False


@dataclass
class TrainResult:
    out: Path
    model_dir: Path
    metrics: dict
    state: TrainerState
    resumed_from: str | None


class ClipDataset(torch.utils.data.Dataset):
    """Decoded fixed-length clips of one split, augmented afresh every epoch when an augmenter is given.

    `context_samples` (with an augmenter), for models that see more audio than a clip (the embedding model's
    1.98 s buffer): each clip is centred in that many samples of silence, as the model centres it, and the
    augmentation (noise, reverb, gain, ...) then applies to the whole buffer; a `_silence_` crop is mirrored out to
    fill it. A stream gives such a model background all around a word, not digital zeros, and background alone
    over its whole buffer. Measured on make demo's data: trained on zeros around clips, the embedding model scored
    incrementally on a 5-minute stream gave 252 false accepts/h and a 23.5 % miss rate at threshold 0.5; with
    context, 144/h and 14.7 % (without the mirrored `_silence_`, 312/h), and voice-held-out test accuracy rose from
    0.929 to 0.953. A random offset instead of the centre lowered test accuracy to 0.893. Unaugmented splits
    stay as the model centres them (validation and test measure clips, as `kws evaluate` does). The noise's SNR is
    relative to the RMS of the whole buffer, so a word is a few dB further above the noise than the SNR drawn.
    """

    def __init__(self, split, clip_samples: int, augmenter=None, seed: int = 0, context_samples: int | None = None):
        from datasets import Audio

        self.split = split.cast_column("audio", Audio(decode=False))
        self.clip_seconds = clip_samples / SAMPLE_RATE
        self.clip_samples = clip_samples
        self.augmenter = augmenter
        self.context_samples = context_samples if augmenter is not None and context_samples else None
        if self.context_samples is not None and self.context_samples < clip_samples:
            raise ValueError(f"context of {context_samples} samples is shorter than a clip ({clip_samples})")
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int):
        row = self.split[int(index)]
        samples = load_audio(row["audio"], clip_seconds=self.clip_seconds)
        if self.augmenter is not None:
            from kwslib.augment import clip_rng

            rng = clip_rng(self.seed, self.epoch, int(index))
            if self.context_samples is not None and row.get("word") == SILENCE:
                # Background all through, as a stream gives it: the crop mirrored out to the buffer's length.
                extra = self.context_samples - len(samples)
                samples = np.pad(samples, (extra // 2, extra - extra // 2), mode="reflect")
            elif self.context_samples is not None:
                buffer = np.zeros(self.context_samples, dtype=np.float32)
                offset = self.context_samples // 2 - (len(samples) + 1) // 2  # where the model centres a clip
                buffer[offset : offset + len(samples)] = samples
                samples = buffer
            samples = self.augmenter(samples, rng)
        return samples, row["label"]


class Collator:
    """Batches (samples, label) pairs through the model's feature extractor (a class, so workers can pickle it)."""

    def __init__(self, feature_extractor):
        self.feature_extractor = feature_extractor

    def __call__(self, batch):
        audio, labels = zip(*batch)
        features = self.feature_extractor(list(audio), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        return {"input_values": features["input_values"], "labels": torch.tensor(labels, dtype=torch.long)}


class FeatureDataset(torch.utils.data.Dataset):
    """Precomputed model features of one split, `[copies, clips, ...]`: epoch e reads copy e % copies."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor):
        self.features, self.labels = features, labels
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.features[self.epoch % len(self.features), int(index)], self.labels[int(index)]


def collate_features(batch) -> dict:
    """Batches (features, label) pairs of a `FeatureDataset` into the model's `input_features` and `labels`."""
    features, labels = zip(*batch)
    return {"input_features": torch.stack(features), "labels": torch.stack(labels)}


def cache_features(
    model, clips: ClipDataset, collate, *, copies: int, batch_size: int, num_workers: int, device, progress=None
) -> FeatureDataset:
    """`model.compute_features` of every clip of `clips`, for epochs 0 .. copies - 1 of its augmentation (one copy
    when it has no augmenter): what the uncached path computes in those epochs, clip for clip."""
    copies = copies if clips.augmenter is not None else 1
    was_training = model.training
    model.eval()
    out, labels = [], None
    for epoch in range(copies):
        clips.set_epoch(epoch)
        # A private generator: building the cache must leave the global RNG (dropout) where an uncached run has it.
        loader = DataLoader(
            clips, batch_size=batch_size, collate_fn=collate, num_workers=num_workers, generator=torch.Generator()
        )
        parts, targets = [], []
        with torch.no_grad():
            for batch in loader:
                parts.append(model.compute_features(batch["input_values"].to(device)).float().cpu())
                targets.append(batch["labels"])
                if progress is not None:
                    progress.update(len(batch["labels"]))
        out.append(torch.cat(parts))
        labels = torch.cat(targets)
    model.train(was_training)
    return FeatureDataset(torch.stack(out), labels)


def torch_threads(num_workers: int, cores: int | None = None) -> int:
    """Torch threads that leave one core per data-loader worker.

    Oversubscribed cores are worse than idle ones here: on a loaded 2-core machine, 2 torch threads next to
    2 loader workers ran 20-30x slower per step than 1 thread (benchmarks/train_throughput.py).
    """
    cores = cores or os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), cores - num_workers))


def default_lr(model_name: str) -> float:
    return DEFAULT_LR.get(model_name, FALLBACK_LR)


def latest_checkpoint(out: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in `<out>/checkpoints` (incomplete ones never get their final name)."""
    folder = Path(out) / CHECKPOINTS
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob("step-*") if (p / STATE_FILE).exists()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def train(
    data_cfg: DataConfig, train_cfg: TrainConfig, augment_cfg: AugmentConfig, *, progress: bool = True
) -> TrainResult:
    """Train `train_cfg.model` on `data_cfg`; write `<out>/model/`, `train_log.jsonl` and `metrics.json`."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DataLoaderConfiguration, set_seed
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    from kwslib.augment import Augmenter
    from kwslib.data import labels_of, load_data, load_noises
    from kwslib.models import build_model

    out = Path(train_cfg.out)
    resume_from = latest_checkpoint(out) if train_cfg.resume else None
    if not train_cfg.resume and (latest_checkpoint(out) or (out / METRICS_FILE).exists()):
        raise ValueError(f"--out {out} already holds a run; pass --resume to continue it, or choose another --out")

    # accelerate keeps its settings in process-wide singletons; a second run in one process (a notebook, the tests)
    # may ask for other ones. The distributed PartialState is kept, so `accelerate launch` is unaffected.
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    try:
        accelerator = Accelerator(
            # Several processes and no GPU (torchrun on CPUs): accelerate picks gloo only when told it is on CPU.
            cpu=int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available(),
            mixed_precision=train_cfg.mixed_precision,
            gradient_accumulation_steps=train_cfg.gradient_accumulation_steps,
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=train_cfg.seed),
        )
    except ValueError as err:
        raise ValueError(f"--mixed-precision {train_cfg.mixed_precision}: {err} (on CPU use bf16 or no)") from None
    set_seed(train_cfg.seed)
    threads = torch_threads(train_cfg.num_workers)
    if accelerator.device.type == "cpu":
        torch.set_num_threads(threads)

    dataset = load_data(data_cfg)
    labels = labels_of(dataset)
    if len(dataset["train"]) == 0 or len(dataset["validation"]) == 0:
        raise ValueError(
            f"--data {data_cfg.source}: train and validation need clips; got "
            + str({k: len(v) for k, v in dataset.items()})
        )
    model, feature_extractor = build_model(
        train_cfg.model,
        labels,
        dropout=train_cfg.dropout,
        freeze_feature_encoder=train_cfg.freeze_feature_encoder,
        from_scratch=train_cfg.from_scratch,
        spec_augment=augment_cfg.enabled and augment_cfg.spec_augment,
    )
    clip_samples = int(round(data_cfg.clip_seconds * SAMPLE_RATE))
    augmenter = None
    if augment_cfg.enabled:
        noises = [n for n in load_noises(data_cfg) if len(n) and np.abs(n).max() > 0]
        if not noises and augment_cfg.noise_prob > 0:
            accelerator.print(
                f"kws: {data_cfg.source} has no background noise recordings; training without noise mixing"
            )
            augment_cfg = dataclasses.replace(augment_cfg, noise_prob=0.0)
        augmenter = Augmenter(augment_cfg, noises)
    # Models that see more than a clip (the embedding model's buffer) train on augmented context around it.
    context = getattr(model.config, "buffer_samples", None)
    train_set = ClipDataset(dataset["train"], clip_samples, augmenter, train_cfg.seed, context_samples=context)
    collate = Collator(feature_extractor)
    loader_args = dict(collate_fn=collate, num_workers=train_cfg.num_workers)
    eval_sets = {
        split: ClipDataset(dataset[split], clip_samples) for split in ("validation", "test") if len(dataset[split])
    }
    cache_note = None
    if train_cfg.feature_cache_epochs and getattr(model, "fixed_features", False):
        started = time.perf_counter()
        copies = min(train_cfg.feature_cache_epochs, train_cfg.epochs)
        total = len(train_set) * (copies if augmenter else 1) + sum(len(s) for s in eval_sets.values())
        model.to(accelerator.device)
        cache_args = dict(batch_size=train_cfg.batch_size, num_workers=train_cfg.num_workers, device=accelerator.device)
        with tqdm(
            total=total,
            desc="kws train: caching features",
            disable=not (progress and accelerator.is_local_main_process),
            unit="clip",
            mininterval=0.1 if sys.stderr.isatty() else 30.0,
        ) as bar:
            train_set = cache_features(model, train_set, collate, copies=copies, progress=bar, **cache_args)
            eval_sets = {
                k: cache_features(model, s, collate, copies=1, progress=bar, **cache_args) for k, s in eval_sets.items()
            }
        cache_note = {
            "copies": len(train_set.features),
            "clips": total,
            "seconds": round(time.perf_counter() - started, 2),
        }
        # The tensors are in memory: worker processes would only copy them.
        loader_args = dict(collate_fn=collate_features, num_workers=0)
    train_loader = DataLoader(train_set, batch_size=train_cfg.batch_size, shuffle=True, **loader_args)
    eval_loaders = {
        split: DataLoader(eval_set, batch_size=train_cfg.batch_size * 2, **loader_args)
        for split, eval_set in eval_sets.items()
    }

    lr = train_cfg.lr or default_lr(train_cfg.model)
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": train_cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )
    model, optimizer, train_loader, *prepared = accelerator.prepare(
        model, optimizer, train_loader, *eval_loaders.values()
    )
    eval_loaders = dict(zip(eval_loaders, prepared))
    updates_per_epoch = math.ceil(len(train_loader) / train_cfg.gradient_accumulation_steps)
    total_updates = train_cfg.max_steps or train_cfg.epochs * updates_per_epoch
    # The prepared scheduler steps once per process per update, hence the factor.
    scheduler = get_cosine_schedule_with_warmup(
        optimizer,
        num_warmup_steps=int(train_cfg.warmup_ratio * total_updates) * accelerator.num_processes,
        num_training_steps=total_updates * accelerator.num_processes,
    )
    scheduler = accelerator.prepare(scheduler)

    state = TrainerState()
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        state = TrainerState(**json.loads((resume_from / STATE_FILE).read_text()))
        if accelerator.is_main_process:
            _truncate_log(out / LOG_FILE, state.global_step)
    elif train_cfg.resume:
        accelerator.print(f"kws: nothing to resume in {out}; starting from scratch")

    meta = checkpoint_meta(labels, data_cfg, train_cfg, augment_cfg)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    n_params = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    accelerator.print(
        f"kws train: {train_cfg.model} ({n_params:,} parameters, {n_trainable:,} trainable) on {data_cfg.source} "
        f"[{labels.protocol}, {len(labels)} classes]\n"
        f"  device {accelerator.device} x {accelerator.num_processes} process(es), mixed precision "
        f"{accelerator.mixed_precision}, {torch.get_num_threads()} torch thread(s) + {train_cfg.num_workers} loader "
        f"worker(s), effective batch "
        f"{train_cfg.batch_size * train_cfg.gradient_accumulation_steps * accelerator.num_processes}, lr {lr:g}\n"
        f"  {len(train_set)} train / {len(dataset['validation'])} validation / {len(dataset['test'])} test clips, "
        f"{updates_per_epoch} updates per epoch, {total_updates} updates at most"
        + (
            f"\n  feature cache: {cache_note['copies']} cop{'y' if cache_note['copies'] == 1 else 'ies'} of the "
            f"training split (epoch e trains on copy e % {cache_note['copies']}) + validation/test, "
            f"{cache_note['clips']} clips in {cache_note['seconds']:.0f} s"
            if cache_note
            else ""
        )
        + (
            f"\n  resuming from {resume_from.name} (epoch {state.epoch}, step {state.global_step})"
            if resume_from
            else ""
        )
    )

    bar = tqdm(
        total=total_updates,
        initial=state.global_step,
        disable=not (progress and accelerator.is_local_main_process),
        unit="step",
        mininterval=0.1 if sys.stderr.isatty() else 30.0,  # a log file gets a line every 30 s, not thousands
    )
    log = _Log(out / LOG_FILE, accelerator.is_main_process)
    t_start = time.perf_counter() - state.train_seconds
    running_loss, running_n = 0.0, 0
    while not state.done and state.epoch < train_cfg.epochs:
        model.train()
        train_loader.set_epoch(state.epoch)
        train_set.set_epoch(state.epoch)
        skip = state.batches_in_epoch
        batches = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
        t_step = time.perf_counter()
        for batch in batches:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and train_cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), train_cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state.batches_in_epoch += 1
            state.train_samples += len(batch["labels"]) * accelerator.num_processes
            running_loss += loss.detach().float().item()
            running_n += 1
            now = time.perf_counter()
            state.step_seconds += now - t_step
            t_step = now
            if not accelerator.sync_gradients:
                continue
            state.global_step += 1
            bar.update(1)
            if state.global_step % LOG_EVERY_STEPS == 0:
                avg = running_loss / max(running_n, 1)
                bar.set_postfix(loss=f"{avg:.3f}")
                log.write(step=state.global_step, epoch=state.epoch, loss=avg, lr=scheduler.get_last_lr()[0])
                running_loss, running_n = 0.0, 0
            if train_cfg.max_steps and state.global_step >= train_cfg.max_steps:
                state.done = True
                break
            if state.global_step % train_cfg.checkpoint_every_steps == 0:
                state.train_seconds = time.perf_counter() - t_start
                _save_checkpoint(accelerator, out, state, train_cfg.keep_checkpoints)
                t_step = time.perf_counter()

        val = _evaluate(model, eval_loaders["validation"], accelerator, list(labels.labels))
        improved = val["accuracy"] > state.best_accuracy
        log.write(
            step=state.global_step, epoch=state.epoch, val_loss=val["loss"], val_accuracy=val["accuracy"], best=improved
        )
        accelerator.print(
            f"  epoch {state.epoch}: validation accuracy {val['accuracy']:.4f}, loss {val['loss']:.4f}"
            + (" *" if improved else "")
        )
        if improved:
            state.best_accuracy, state.best_epoch, state.bad_epochs = val["accuracy"], state.epoch, 0
            save_model_dir(accelerator, model, feature_extractor, out / BEST_DIR, {**meta, "epoch": state.epoch})
        else:
            state.bad_epochs += 1
        state.epoch += 1
        state.batches_in_epoch = 0
        if train_cfg.early_stopping_patience and state.bad_epochs >= train_cfg.early_stopping_patience:
            accelerator.print(f"  early stop: no better validation accuracy for {state.bad_epochs} epochs")
            state.done = True
        state.train_seconds = time.perf_counter() - t_start
        _save_checkpoint(accelerator, out, state, train_cfg.keep_checkpoints)
    bar.close()

    # Final metrics come from the best epoch's weights.
    accelerator.wait_for_everyone()
    best = accelerator.unwrap_model(model)
    from safetensors.torch import load_file

    weights = out / BEST_DIR / "model.safetensors"
    if weights.exists():
        best.load_state_dict(load_file(str(weights)))
    else:  # a sharded checkpoint (large models)
        best.load_state_dict(type(best).from_pretrained(out / BEST_DIR).state_dict())
    from kwslib.provenance import run_context

    metrics = {
        "schema": METRICS_SCHEMA,
        "context": run_context(
            model=str(out / MODEL_DIR),
            model_name=train_cfg.model,
            model_type=best.config.model_type,
            parameters=int(sum(p.numel() for p in best.parameters())),
            backend="torch",
            data=data_cfg.source,
            protocol=labels.protocol,
            split="test",
        ),
        "model": train_cfg.model,
        "data": data_cfg.source,
        "protocol": labels.protocol,
        "labels": list(labels.labels),
        "best_epoch": state.best_epoch,
        "train": {
            "epochs": state.epoch,
            "steps": state.global_step,
            "seconds": round(state.train_seconds, 2),
            "step_seconds": round(state.step_seconds, 2),
            # Training steps only (loading included); validation and checkpoints are in `seconds`.
            "samples_per_second": round(state.train_samples / max(state.step_seconds, 1e-9), 1),
            **({"feature_cache": cache_note} if cache_note else {}),
        },
    }
    for split, loader in eval_loaders.items():
        metrics[split] = _evaluate(model, loader, accelerator, list(labels.labels))
    save_model_dir(
        accelerator, model, feature_extractor, out / MODEL_DIR, {**meta, "epoch": state.best_epoch, "metrics": metrics}
    )
    if accelerator.is_main_process:
        write_json_atomic(out / METRICS_FILE, metrics)
    test_acc = metrics.get("test", {}).get("accuracy")
    accelerator.print(
        f"kws train: best epoch {state.best_epoch}: validation accuracy {metrics['validation']['accuracy']:.4f}"
        + (f", test accuracy {test_acc:.4f}" if test_acc is not None else "")
        + f" -> {out / MODEL_DIR}"
    )
    accelerator.end_training()
    return TrainResult(out, out / MODEL_DIR, metrics, state, resume_from.name if resume_from else None)


def _evaluate(model, loader, accelerator, labels: list[str]) -> dict:
    model.eval()
    logits, targets = [], []
    with torch.no_grad():
        for batch in loader:
            out = model(**{k: v for k, v in batch.items() if k != "labels"})
            lg, tg = accelerator.gather_for_metrics((out.logits.float(), batch["labels"]))
            logits.append(lg.cpu())
            targets.append(tg.cpu())
    model.train()
    logits, targets = torch.cat(logits), torch.cat(targets)
    loss = torch.nn.functional.cross_entropy(logits, targets).item()
    return classification_metrics(targets.numpy(), logits.argmax(-1).numpy(), labels, loss=loss)


def checkpoint_meta(labels, data_cfg: DataConfig, train_cfg: TrainConfig, augment_cfg: AugmentConfig) -> dict:
    """What a checkpoint carries besides its weights: labels, protocol, and the configs that made it."""
    from kwslib import __version__

    return {
        "kws_version": __version__,
        "labels": labels.to_dict(),
        "protocol": labels.protocol,
        "sample_rate": SAMPLE_RATE,
        "clip_seconds": data_cfg.clip_seconds,
        "data": dataclasses.asdict(data_cfg),
        "train": dataclasses.asdict(train_cfg),
        "augment": dataclasses.asdict(augment_cfg),
    }


def save_model_dir(accelerator, model, feature_extractor, path: Path, meta: dict) -> None:
    """save_pretrained + feature extractor + kws.json into `path`, swapped in whole (never half written)."""
    from transformers.utils import logging as hf_logging

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a "Writing model shards" bar per epoch drowns the training log
        try:
            accelerator.unwrap_model(model).save_pretrained(tmp, safe_serialization=True)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        feature_extractor.save_pretrained(tmp)
        write_json_atomic(tmp / "kws.json", meta)
        _swap_in(tmp, path)
    accelerator.wait_for_everyone()


def _save_checkpoint(accelerator, out: Path, state: TrainerState, keep: int) -> None:
    folder = out / CHECKPOINTS
    final = folder / f"step-{state.global_step}"
    tmp = folder / f".step-{state.global_step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        # The state file goes in last: a checkpoint without it is incomplete and ignored by --resume.
        write_json_atomic(tmp / STATE_FILE, dataclasses.asdict(state))
        _swap_in(tmp, final)
        old = sorted((p for p in folder.glob("step-*") if p != final), key=lambda p: int(p.name.split("-")[1]))
        for p in old[: max(0, len(old) - (keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)
    accelerator.wait_for_everyone()


def _swap_in(tmp: Path, final: Path) -> None:
    if final.exists():
        trash = final.with_name(f".{final.name}.old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, trash)
        os.replace(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, final)


class _Log:
    """train_log.jsonl: one JSON object per line, flushed as written."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def write(self, **record) -> None:
        if not self.enabled:
            return
        record["time"] = round(time.time(), 3)
        with open(self.path, "a") as f:
            f.write(json.dumps({k: (float(v) if isinstance(v, np.floating) else v) for k, v in record.items()}) + "\n")


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines a killed run wrote after its last checkpoint: the resumed run writes them again."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)
