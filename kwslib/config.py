"""One dataclass per stage. The CLI and the notebooks build these; functions take them as arguments."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field

SAMPLE_RATE = 16_000


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class DataConfig:
    """Where the audio comes from and how it becomes train/validation/test."""

    source: str = field(
        default="data/synth",
        metadata=_help(
            "a Speech Commands folder (official v0.02 layout), a custom folder <root>/<label>/*.wav, "
            "'google/speech_commands', or any hub audio-classification dataset id"
        ),
    )
    protocol: str = field(default="sc12", metadata=_help("label protocol: sc12, sc35 or custom"))
    words: list[str] | None = field(
        default=None,
        metadata=_help("keywords for the custom protocol (default: every folder name); others become _unknown_"),
    )
    clip_seconds: float = field(default=1.0, metadata=_help("clip length in seconds (1.0 for Speech Commands)"))
    silence_percentage: float = field(
        default=10.0, metadata=_help("_silence_ examples per split, as a percentage of its keyword examples")
    )
    unknown_percentage: float = field(
        default=10.0, metadata=_help("_unknown_ examples per split, as a percentage of its keyword examples")
    )
    train_silence_percentage: float | None = field(
        default=None,
        metadata=_help(
            "_silence_ examples in the training split only (default: --silence-percentage); more background teaches "
            "a streaming detector to stay quiet, while validation and test keep the protocol's share"
        ),
    )
    validation_percentage: float = field(
        default=10.0, metadata=_help("validation share for the speaker-hash rule when no list files exist")
    )
    testing_percentage: float = field(
        default=10.0, metadata=_help("test share for the speaker-hash rule when no list files exist")
    )
    audio_column: str = field(default="audio", metadata=_help("audio column of a hub dataset"))
    label_column: str = field(default="label", metadata=_help("label column of a hub dataset"))
    speaker_column: str | None = field(
        default=None, metadata=_help("speaker column of a hub dataset (keeps speakers out of two splits)")
    )
    dataset_config: str | None = field(default=None, metadata=_help("hub dataset configuration name"))
    revision: str | None = field(default=None, metadata=_help("hub revision (branch, tag or commit)"))
    seed: int = field(default=0, metadata=_help("seed for sampling _unknown_/_silence_ and for random splits"))

    def silence_share(self, split: str) -> float:
        """`_silence_` examples of `split` as a percentage of its keyword examples."""
        if split == "train" and self.train_silence_percentage is not None:
            return self.train_silence_percentage
        return self.silence_percentage

    def __post_init__(self):
        from kwslib.labels import PROTOCOLS

        if self.protocol not in PROTOCOLS:
            raise ValueError(f"--protocol {self.protocol} is unknown; use one of {', '.join(PROTOCOLS)}")
        _check_positive("clip_seconds", self.clip_seconds)
        for name in ("silence_percentage", "unknown_percentage", "validation_percentage", "testing_percentage"):
            _check_range(name, getattr(self, name), 0.0, 100.0)
        if self.train_silence_percentage is not None:
            _check_range("train_silence_percentage", self.train_silence_percentage, 0.0, 1000.0)
        if self.validation_percentage + self.testing_percentage >= 100:
            raise ValueError(
                f"--validation-percentage {self.validation_percentage} + --testing-percentage "
                f"{self.testing_percentage} leaves nothing to train on; keep their sum below 100"
            )


@dataclass
class SynthConfig:
    """A synthetic Speech Commands dataset made with text-to-speech engines."""

    out: str = field(default="data/synth", metadata=_help("output folder (official Speech Commands layout)"))
    words: list[str] | None = field(
        default=None, metadata=_help("words or short phrases to speak (default: the 35 Speech Commands words)")
    )
    extra_words: list[str] | None = field(
        default=None,
        metadata=_help(
            "non-keyword words for a more varied _unknown_, a few per speaker (default: about 60 common words, "
            "many close to the sc12 keywords, unless --words is given); 'none' disables them"
        ),
    )
    extra_words_per_speaker: int = field(
        default=6, metadata=_help("extra words each speaker says, drawn per speaker (0 = none)")
    )
    speakers: int = field(default=150, metadata=_help("number of synthetic speakers (engine + voice + prosody)"))
    engines: list[str] = field(
        default_factory=lambda: ["espeak-ng", "flite", "festival"],
        metadata=_help("TTS engines to use; missing ones are skipped with a warning"),
    )
    clip_seconds: float = field(default=1.0, metadata=_help("clip length in seconds"))
    validation_fraction: float = field(default=0.1, metadata=_help("share of voices held out for validation"))
    test_fraction: float = field(default=0.1, metadata=_help("share of voices held out for test"))
    noise_seconds: float = field(default=60.0, metadata=_help("length of each generated background noise file"))
    seed: int = field(default=0, metadata=_help("same seed => identical files"))
    jobs: int = field(default=0, metadata=_help("parallel worker processes (0 = one per CPU core)"))
    overwrite: bool = field(default=False, metadata=_help("replace an existing dataset in --out"))

    def __post_init__(self):
        if self.speakers < 3:
            raise ValueError(f"--speakers {self.speakers} is too few: train, validation and test need one each")
        _check_positive("clip_seconds", self.clip_seconds)
        _check_positive("noise_seconds", self.noise_seconds)
        _check_range("validation_fraction", self.validation_fraction, 0.0, 0.5)
        _check_range("test_fraction", self.test_fraction, 0.0, 0.5)
        if self.jobs < 0:
            raise ValueError(f"--jobs {self.jobs} must be 0 (one per core) or a positive number")
        if self.words is not None and not [w for w in self.words if w.strip()]:
            raise ValueError("--words is empty; give at least one word, e.g. --words yes,no")
        if self.extra_words is not None and [w.strip().lower() for w in self.extra_words] == ["none"]:
            self.extra_words = []  # the CLI's spelling of "no extra words" (a list option cannot be empty there)
        if self.extra_words_per_speaker < 0:
            raise ValueError(
                f"--extra-words-per-speaker {self.extra_words_per_speaker} must be 0 (no extra words) or more"
            )


@dataclass
class AugmentConfig:
    """Training augmentation, sampled afresh for every clip in every epoch (validation/test are never augmented)."""

    enabled: bool = field(default=True, metadata=_help("augment training clips"))
    shift_ms: float = field(default=100.0, metadata=_help("random time shift of up to +/- this many ms"))
    noise_prob: float = field(default=0.8, metadata=_help("probability of mixing in background noise"))
    min_snr_db: float = field(default=0.0, metadata=_help("lowest signal-to-noise ratio of the mixed noise"))
    max_snr_db: float = field(default=20.0, metadata=_help("highest signal-to-noise ratio of the mixed noise"))
    gain_db: float = field(
        default=20.0, metadata=_help("random gain of up to +/- this many dB, then clipped to [-1, 1] like an ADC")
    )
    reverb_prob: float = field(default=0.1, metadata=_help("probability of a synthetic room reverb"))
    device_prob: float = field(default=0.1, metadata=_help("probability of a band-limited 'device' colouring"))
    spec_augment: bool = field(
        default=True, metadata=_help("SpecAugment time/frequency masks inside the compact model while training")
    )

    def __post_init__(self):
        _check_range("shift_ms", self.shift_ms, 0.0, 1000.0)
        for name in ("noise_prob", "reverb_prob", "device_prob"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        if self.min_snr_db > self.max_snr_db:
            raise ValueError(f"--min-snr-db {self.min_snr_db} is above --max-snr-db {self.max_snr_db}; swap them")
        _check_range("gain_db", self.gain_db, 0.0, 40.0)


@dataclass
class TrainConfig:
    """The training run: model, optimisation, checkpoints."""

    model: str = field(
        default="compact",
        metadata=_help(
            "compact (small CNN for edge use), embedding (pretrained speech_embedding front end + small head; "
            "downloads the front end once), wav2vec2-tiny / wav2vec2-base-random (random weights, offline), "
            "a hub id such as facebook/wav2vec2-base, or a local checkpoint folder"
        ),
    )
    out: str = field(
        default="runs/demo", metadata=_help("run folder: model/, checkpoints/, train_log.jsonl, metrics.json")
    )
    epochs: int = field(default=15, metadata=_help("passes over the training split"))
    max_steps: int | None = field(
        default=None, metadata=_help("stop after this many optimizer steps (overrides epochs)")
    )
    batch_size: int = field(default=64, metadata=_help("clips per device per step"))
    gradient_accumulation_steps: int = field(default=1, metadata=_help("steps to accumulate before an update"))
    lr: float | None = field(
        default=None, metadata=_help("peak learning rate (default: 3e-3 compact, 1e-3 embedding, 3e-5 others)")
    )
    weight_decay: float = field(default=0.01, metadata=_help("AdamW weight decay"))
    warmup_ratio: float = field(default=0.1, metadata=_help("share of steps spent warming up the learning rate"))
    max_grad_norm: float = field(default=1.0, metadata=_help("gradient clipping norm (0 disables)"))
    mixed_precision: str = field(default="no", metadata=_help("no, fp16 or bf16 (accelerate)"))
    early_stopping_patience: int = field(
        default=5, metadata=_help("stop after this many epochs without a better validation accuracy (0 = never)")
    )
    checkpoint_every_steps: int = field(default=200, metadata=_help("save a resumable checkpoint every N steps"))
    keep_checkpoints: int = field(default=2, metadata=_help("resumable checkpoints to keep"))
    resume: bool = field(default=False, metadata=_help("resume from the latest checkpoint in --out"))
    num_workers: int = field(
        default=1,
        metadata=_help("data loader worker processes (0 = in the main process); torch threads get the other cores"),
    )
    freeze_feature_encoder: bool = field(
        default=True,
        metadata=_help(
            "freeze wav2vec2's convolutional feature encoder (usual for fine-tuning), or the embedding model's "
            "speech_embedding front end (only its head trains)"
        ),
    )
    feature_cache_epochs: int = field(
        default=4,
        metadata=_help(
            "for models with a frozen front end (embedding): compute its features once for this many augmented "
            "copies of the training split and train on them, epoch e on copy e mod N (0 = compute them every step)"
        ),
    )
    dropout: float = field(default=0.1, metadata=_help("dropout of the classifier (and transformer layers)"))
    from_scratch: bool = field(
        default=False, metadata=_help("initialise --model's architecture with random weights instead of its own")
    )
    seed: int = field(default=0, metadata=_help("seed for weights, shuffling and augmentation"))

    def __post_init__(self):
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"--mixed-precision {self.mixed_precision} is unknown; use no, fp16 or bf16")
        for name in (
            "epochs",
            "batch_size",
            "gradient_accumulation_steps",
            "checkpoint_every_steps",
            "keep_checkpoints",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} {getattr(self, name)} must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--max-steps {self.max_steps} must be at least 1")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"--lr {self.lr} must be greater than 0")
        _check_range("warmup_ratio", self.warmup_ratio, 0.0, 1.0)
        _check_range("dropout", self.dropout, 0.0, 0.9)
        if self.num_workers < 0 or self.early_stopping_patience < 0 or self.feature_cache_epochs < 0:
            raise ValueError("--num-workers, --early-stopping-patience and --feature-cache-epochs must be 0 or more")


@dataclass
class EvalConfig:
    """Evaluation of a trained model by keyword, noise and device: `kws evaluate`."""

    model: str = field(
        default="runs/demo/model", metadata=_help("checkpoint folder (e.g. runs/demo/model) or an exported .onnx file")
    )
    out: str = field(default="runs/demo", metadata=_help("folder for metrics.json, mistakes/ and report.html"))
    split: str = field(default="test", metadata=_help("split to score: test or validation"))
    conditions: str = field(
        default="all",
        metadata=_help(
            "conditions to score: all, clean, or a comma list such as clean,babble@0dB,device:telephone "
            "(noise types white/pink/babble/background at 20/10/5/0/-5 dB; devices studio, telephone, laptop, "
            "far_field, cheap_mic, lossy_codec; levels level:-30dB, level:+20dB)"
        ),
    )
    batch_size: int = field(default=64, metadata=_help("clips per forward pass"))
    max_clips: int | None = field(default=None, metadata=_help("score at most this many clips (a seeded sample)"))
    mistakes: int = field(default=12, metadata=_help("most confident wrong answers kept with their audio"))
    report: bool = field(default=True, metadata=_help("also write report.html"))
    seed: int = field(default=0, metadata=_help("seed of the conditions: the same clip gets the same corruption"))

    def __post_init__(self):
        # Not train: metrics.json's `train` key holds the training run's own numbers, and a model's score on the
        # clips it learned from says nothing about where it fails.
        if self.split not in ("validation", "test"):
            raise ValueError(f"--split {self.split} is not supported; use test or validation")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size {self.batch_size} must be at least 1")
        if self.max_clips is not None and self.max_clips < 1:
            raise ValueError(f"--max-clips {self.max_clips} must be at least 1 (or leave it out for all clips)")
        if self.mistakes < 0:
            raise ValueError(f"--mistakes {self.mistakes} must be 0 or more")
        from kwslib.conditions import parse_conditions

        parse_conditions(self.conditions)  # a bad name fails here, before any model or data is loaded


@dataclass
class StreamConfig:
    """Streaming detection on continuous audio (`kws stream`) and its evaluation on long streams (`kws stream-eval`)."""

    model: str = field(
        default="runs/demo/model", metadata=_help("checkpoint folder (e.g. runs/demo/model) or an exported .onnx file")
    )
    window: float | None = field(
        default=None, metadata=_help("seconds of audio the model sees per decision (default: the model's clip length)")
    )
    hop: float = field(default=0.1, metadata=_help("seconds between decisions (one window scored per hop)"))
    smoothing: int = field(default=3, metadata=_help("average the probabilities of the last N windows"))
    threshold: float = field(default=0.5, metadata=_help("a keyword fires when its smoothed probability reaches this"))
    keyword_thresholds: list[str] | None = field(
        default=None, metadata=_help("per-keyword thresholds overriding --threshold, e.g. yes=0.8,no=0.7")
    )
    refractory: float | None = field(
        default=None,
        metadata=_help(
            "seconds after a detection during which no keyword can fire again (default: the window, as long as a "
            "word stays in view: 1 s, 1.98 s for an embedding model scored incrementally)"
        ),
    )
    vad: bool = field(
        default=False, metadata=_help("skip the model on windows without speech (silero-vad on onnxruntime)")
    )
    vad_threshold: float = field(default=0.5, metadata=_help("silero-vad speech probability that counts as speech"))
    incremental: bool | None = field(
        default=None,
        metadata=_help(
            "embedding models: compute each 80 ms speech embedding once and reuse it in later windows (default: on "
            "for an embedding checkpoint folder; --no-incremental scores every window from its samples)"
        ),
    )
    batch_size: int = field(
        default=16, metadata=_help("windows scored per model call when processing files and streams offline")
    )
    max_backlog_seconds: float = field(
        default=2.0,
        metadata=_help("live microphone: when more unscored audio than this piles up, score only the newest"),
    )
    data: str = field(
        default="data/synth", metadata=_help("dataset whose test speakers, noise and non-keywords make the stream")
    )
    split: str = field(default="test", metadata=_help("split whose clips are placed in the stream: test or validation"))
    minutes: float = field(default=30.0, metadata=_help("length of the generated stream in minutes"))
    out: str = field(default="runs/demo", metadata=_help("folder whose metrics.json gets the `stream` section"))
    seed: int = field(default=0, metadata=_help("same seed => the same stream"))
    min_snr_db: float = field(default=10.0, metadata=_help("lowest speech-to-background-noise ratio in the stream"))
    max_snr_db: float = field(default=20.0, metadata=_help("highest speech-to-background-noise ratio in the stream"))
    min_spacing: float = field(default=4.0, metadata=_help("fewest seconds from one word's start to the next"))
    max_spacing: float = field(default=10.0, metadata=_help("most seconds from one word's start to the next"))
    unknown_share: float = field(
        default=0.25, metadata=_help("share of the placed words that are non-keywords (they must not fire)")
    )
    tolerance: float | None = field(
        default=None,
        metadata=_help(
            "seconds after a word's end in which its detection still counts as a hit (default: the detector's "
            "window, as long as the word stays in view)"
        ),
    )
    wav: str | None = field(
        default=None, metadata=_help("evaluate this recorded stream instead of generating one (needs --csv)")
    )
    csv: str | None = field(
        default=None, metadata=_help("ground truth of --wav: columns time,label (word start, s) and optional end")
    )
    save_stream: bool = field(
        default=False, metadata=_help("also write the generated stream as <out>/stream.wav and <out>/stream.csv")
    )

    def __post_init__(self):
        _check_positive("hop", self.hop)
        if self.window is not None:
            _check_positive("window", self.window)
            if self.hop > self.window:
                raise ValueError(
                    f"--hop {self.hop} is longer than --window {self.window}; use a hop of at most the window"
                )
        if self.smoothing < 1:
            raise ValueError(f"--smoothing {self.smoothing} must be at least 1 (1 = no smoothing)")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"--threshold {self.threshold} must be in (0, 1], e.g. 0.5")
        self.keyword_threshold_map()  # a malformed or out-of-range entry fails here
        if self.refractory is not None and self.refractory < 0:
            raise ValueError(f"--refractory {self.refractory} must be 0 or more seconds")
        if not 0 < self.vad_threshold < 1:
            raise ValueError(f"--vad-threshold {self.vad_threshold} must be between 0 and 1, e.g. 0.5")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size {self.batch_size} must be at least 1")
        _check_positive("max_backlog_seconds", self.max_backlog_seconds)
        if self.split not in ("validation", "test"):
            raise ValueError(f"--split {self.split} is not supported; use test or validation")
        _check_positive("minutes", self.minutes)
        if self.min_snr_db > self.max_snr_db:
            raise ValueError(f"--min-snr-db {self.min_snr_db} is above --max-snr-db {self.max_snr_db}; swap them")
        if self.min_spacing < 1.0:
            raise ValueError(f"--min-spacing {self.min_spacing} is shorter than a 1 s word; use 1.0 or more")
        if self.min_spacing > self.max_spacing:
            raise ValueError(f"--min-spacing {self.min_spacing} is above --max-spacing {self.max_spacing}; swap them")
        if not 0 <= self.unknown_share < 1:
            raise ValueError(f"--unknown-share {self.unknown_share} must be at least 0 and below 1, e.g. 0.25")
        if self.tolerance is not None and self.tolerance < 0:
            raise ValueError(f"--tolerance {self.tolerance} must be 0 or more seconds")
        if (self.wav is None) != (self.csv is None):
            raise ValueError("--wav and --csv go together: give the recorded stream and its ground truth, or neither")

    def keyword_threshold_map(self) -> dict[str, float]:
        """`--keyword-thresholds yes=0.8,no=0.7` as {"yes": 0.8, "no": 0.7} ({} when not given)."""
        out = {}
        for item in self.keyword_thresholds or []:
            word, sep, value = item.partition("=")
            try:
                number = float(value) if sep and word.strip() else None
            except ValueError:
                number = None
            if number is None or not 0 < number <= 1:
                raise ValueError(f"--keyword-thresholds {item!r} must look like yes=0.8 with a value in (0, 1]")
            out[word.strip()] = number
        return out


IAM_ROLE_PATTERN = r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+"
S3_URI_PATTERN = r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?"
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)  # the sizes SageMaker Serverless Inference accepts


@dataclass
class SageMakerConfig:
    """The AWS account side shared by every `kws sagemaker` command (SageMaker Python SDK v2)."""

    role: str | None = field(
        default=None,
        metadata=_help("IAM role SageMaker assumes, e.g. arn:aws:iam::123456789012:role/SageMakerExecution"),
    )
    region: str | None = field(default=None, metadata=_help("AWS region (default: AWS_DEFAULT_REGION / ~/.aws)"))
    bucket: str | None = field(
        default=None, metadata=_help("S3 bucket for code, models and outputs (default: sagemaker-<region>-<account>)")
    )
    prefix: str = field(default="kws", metadata=_help("key prefix of everything kws writes to the bucket"))

    def __post_init__(self):
        import re

        if self.role is not None and not re.fullmatch(IAM_ROLE_PATTERN, self.role):
            raise ValueError(
                f"--role {self.role} is not an IAM role ARN; use arn:aws:iam::<12-digit account>:role/<name>"
            )
        if self.bucket is not None and (self.bucket.startswith("s3://") or "/" in self.bucket):
            raise ValueError(
                f"--bucket {self.bucket}: give the bucket name only (no s3://, no /); use --prefix for keys"
            )
        self.prefix = self.prefix.strip("/")


@dataclass
class SageMakerTrainConfig:
    """A training job: `kws train` in the Hugging Face training container (`kws sagemaker train`)."""

    data: str | None = field(
        default=None,
        metadata=_help("s3://bucket/prefix/ of a Speech Commands folder (the 'train' channel) or a hub dataset id"),
    )
    instance_type: str = field(default="ml.g5.xlarge", metadata=_help("training instance type (1 x A10G GPU)"))
    instance_count: int = field(default=1, metadata=_help("instances; more than 1 trains with torchrun on all"))
    distributed: bool = field(
        default=False,
        metadata=_help("torchrun over every GPU (torch_distributed); always on with --instance-count > 1"),
    )
    spot: bool = field(default=False, metadata=_help("managed spot training (cheaper; resumes from checkpoints)"))
    max_run: int = field(default=86_400, metadata=_help("stop the job after this many seconds of training"))
    max_wait: int | None = field(
        default=None, metadata=_help("with --spot: seconds to wait for capacity plus training (default: 2 x max-run)")
    )
    checkpoint_s3_uri: str | None = field(
        default=None,
        metadata=_help(
            "S3 prefix synced with /opt/ml/checkpoints (default with --spot: s3://<bucket>/<prefix>/checkpoints/<job>)"
        ),
    )
    output_path: str | None = field(
        default=None, metadata=_help("S3 prefix for <job>/output/model.tar.gz (default: s3://<bucket>/<prefix>/jobs)")
    )
    volume_size: int = field(default=50, metadata=_help("GB of disk per instance (data, checkpoints)"))
    job_name: str | None = field(default=None, metadata=_help("training job name (default: kws-train-<timestamp>)"))
    wait: bool = field(default=False, metadata=_help("wait for the job and stream its logs"))
    transformers_version: str = field(default="4.56.2", metadata=_help("Hugging Face training image: transformers"))
    pytorch_version: str = field(default="2.8.0", metadata=_help("Hugging Face training image: PyTorch"))
    py_version: str = field(default="py312", metadata=_help("Hugging Face training image: Python"))

    def __post_init__(self):
        import re
        from pathlib import Path

        if not self.data:
            raise ValueError("--data is required: s3://bucket/prefix/ of a Speech Commands folder, or a hub dataset id")
        if self.data.startswith("s3:") or self.data.startswith("S3:"):
            _check_s3_uri("data", self.data)
        elif Path(self.data).expanduser().exists():
            raise ValueError(
                f"--data {self.data} is a local folder; SageMaker reads S3: aws s3 sync {self.data} "
                "s3://<bucket>/<prefix>/ and pass that URI"
            )
        elif not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", self.data):
            raise ValueError(
                f"--data {self.data} is neither an s3:// URI nor a hub dataset id such as google/speech_commands"
            )
        if self.instance_count < 1:
            raise ValueError(f"--instance-count {self.instance_count} must be at least 1")
        _check_positive("max_run", self.max_run)
        _check_positive("volume_size", self.volume_size)
        if self.max_wait is not None:
            if not self.spot:
                raise ValueError("--max-wait only applies to spot training; add --spot or drop --max-wait")
            if self.max_wait < self.max_run:
                raise ValueError(f"--max-wait {self.max_wait} is below --max-run {self.max_run}; it includes the run")
        for name in ("checkpoint_s3_uri", "output_path"):
            if getattr(self, name) is not None:
                _check_s3_uri(name, getattr(self, name))


@dataclass
class SageMakerDeployConfig:
    """A real-time or serverless endpoint serving a model.tar.gz (`kws sagemaker deploy`)."""

    model_data: str | None = field(
        default=None, metadata=_help("model.tar.gz from `kws sagemaker package` or a training job: s3:// or local")
    )
    endpoint_name: str | None = field(default=None, metadata=_help("endpoint name (default: kws-<timestamp>)"))
    instance_type: str = field(default="ml.m5.xlarge", metadata=_help("real-time instance type (CPU is plenty)"))
    instance_count: int = field(default=1, metadata=_help("real-time instances behind the endpoint"))
    serverless: bool = field(default=False, metadata=_help("serverless endpoint instead of instances"))
    memory: int = field(default=3072, metadata=_help("serverless memory in MB: 1024, 2048, ... 6144"))
    concurrency: int = field(default=5, metadata=_help("serverless maximum concurrent invocations (1-200)"))
    wait: bool = field(default=True, metadata=_help("wait until the endpoint is InService"))
    transformers_version: str = field(default="4.51.3", metadata=_help("Hugging Face inference image: transformers"))
    pytorch_version: str = field(default="2.6.0", metadata=_help("Hugging Face inference image: PyTorch"))
    py_version: str = field(default="py312", metadata=_help("Hugging Face inference image: Python"))

    def __post_init__(self):
        _check_model_data(self.model_data)
        if self.instance_count < 1:
            raise ValueError(f"--instance-count {self.instance_count} must be at least 1")
        if self.memory not in SERVERLESS_MEMORY_MB:
            raise ValueError(f"--memory {self.memory} is not a serverless size; use one of {SERVERLESS_MEMORY_MB}")
        if not 1 <= self.concurrency <= 200:
            raise ValueError(f"--concurrency {self.concurrency} must be between 1 and 200")


@dataclass
class SageMakerBatchConfig:
    """A batch transform job over S3 (`kws sagemaker batch`): JSONL lines or raw audio objects in, JSONL out."""

    input: str | None = field(
        default=None, metadata=_help("s3:// URI of a .jsonl file (or prefix of them), or a prefix of audio files")
    )
    output: str | None = field(default=None, metadata=_help("s3:// prefix for the results (<input name>.out)"))
    input_format: str = field(
        default="auto", metadata=_help("jsonl (one request a line), audio (one file a request) or auto (by suffix)")
    )
    model_data: str | None = field(default=None, metadata=_help("model.tar.gz to serve: s3:// or local"))
    model_name: str | None = field(default=None, metadata=_help("an existing SageMaker model instead of --model-data"))
    instance_type: str = field(default="ml.m5.xlarge", metadata=_help("transform instance type"))
    instance_count: int = field(default=1, metadata=_help("transform instances"))
    max_payload: int = field(default=6, metadata=_help("MB per request to the container (JSONL lines are grouped)"))
    job_name: str | None = field(default=None, metadata=_help("transform job name (default: kws-batch-<timestamp>)"))
    wait: bool = field(default=False, metadata=_help("wait for the job to finish"))
    transformers_version: str = field(default="4.51.3", metadata=_help("Hugging Face inference image: transformers"))
    pytorch_version: str = field(default="2.6.0", metadata=_help("Hugging Face inference image: PyTorch"))
    py_version: str = field(default="py312", metadata=_help("Hugging Face inference image: Python"))

    def __post_init__(self):
        for name in ("input", "output"):
            if not getattr(self, name):
                raise ValueError(f"--{name} is required: an s3://bucket/prefix URI")
            _check_s3_uri(name, getattr(self, name))
        if self.input_format == "auto":
            self.input_format = "jsonl" if self.input.lower().endswith((".jsonl", ".json")) else "audio"
        if self.input_format not in ("jsonl", "audio"):
            raise ValueError(f"--input-format {self.input_format} is unknown; use jsonl, audio or auto")
        if (self.model_data is None) == (self.model_name is None):
            raise ValueError("give exactly one of --model-data (a model.tar.gz) or --model-name (an existing model)")
        if self.model_data is not None:
            _check_model_data(self.model_data)
        if self.instance_count < 1 or not 1 <= self.max_payload <= 100:
            raise ValueError("--instance-count must be at least 1 and --max-payload between 1 and 100 (MB)")


def _check_s3_uri(name: str, value: str) -> None:
    import re

    if not re.fullmatch(S3_URI_PATTERN, value):
        raise ValueError(f"--{name.replace('_', '-')} {value} is not an S3 URI; use s3://bucket/prefix")


def _check_model_data(value: str | None) -> None:
    from pathlib import Path

    if not value:
        raise ValueError(
            "--model-data is required: a model.tar.gz (s3:// URI or local file from `kws sagemaker package`)"
        )
    if value.startswith(("s3:", "S3:")):
        _check_s3_uri("model_data", value)
    elif not Path(value).expanduser().is_file():
        raise ValueError(
            f"--model-data {value}: no such file; build one with `kws sagemaker package` or give an s3:// URI"
        )
    elif not value.endswith(".tar.gz"):
        raise ValueError(f"--model-data {value} is not a .tar.gz; build one with `kws sagemaker package`")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"--{name.replace('_', '-')} {value} must be greater than 0")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"--{name.replace('_', '-')} {value} must be between {low} and {high}")


@dataclass
class ExportConfig:
    """ONNX export of a checkpoint folder, checked against PyTorch: `kws export`."""

    model: str = field(default="runs/demo/model", metadata=_help("checkpoint folder to export, e.g. runs/demo/model"))
    out: str | None = field(
        default=None, metadata=_help("output .onnx file (default: beside the folder, e.g. runs/demo/model.onnx)")
    )
    quantize: str | None = field(
        default=None,
        metadata=_help("int8: also write <out stem>.int8.onnx (onnxruntime dynamic quantization of MatMul/Gemm)"),
    )
    data: str | None = field(
        default=None,
        metadata=_help(
            "dataset whose validation split checks the export (real clips; int8 accuracy); default: test signals"
        ),
    )
    opset: int = field(default=17, metadata=_help("ONNX opset (17 or newer)"))
    check: bool = field(
        default=True, metadata=_help("check the graph against PyTorch and write <out>.parity.json beside it")
    )
    tolerance: float = field(
        default=1e-4, metadata=_help("largest allowed |logit difference| between the fp32 graph and PyTorch")
    )
    int8_min_agreement: float = field(
        default=99.0, metadata=_help("percent of validation clips on which int8 must give fp32's top-1 label")
    )
    int8_max_accuracy_drop: float = field(
        default=0.5, metadata=_help("validation accuracy the int8 model may lose, in percentage points")
    )
    int8_convs: bool = field(
        default=False,
        metadata=_help(
            "also quantize 1-D convolutions (exported as unfold + MatMul); slower than fp32 convolutions on an AVX2 "
            "CPU without VNNI (measured), so off by default"
        ),
    )
    int8_reduce_range: bool = field(
        default=False,
        metadata=_help(
            "7-bit int8 weights: avoids the int16 saturation of onnxruntime's AVX2 int8 kernels on CPUs without "
            "VNNI; try it when the int8 accuracy check fails"
        ),
    )
    max_validation_clips: int | None = field(
        default=None, metadata=_help("check int8 on at most this many validation clips (evenly spread; default all)")
    )

    def __post_init__(self):
        if self.quantize is not None and self.quantize.lower() == "none":
            self.quantize = None
        if self.quantize is not None and self.quantize != "int8":
            raise ValueError(f"--quantize {self.quantize} is unknown; use int8 (or leave it out for fp32 only)")
        if self.out is not None and not self.out.lower().endswith(".onnx"):
            raise ValueError(f"--out {self.out} must end in .onnx, e.g. runs/demo/model.onnx")
        if self.opset < 17:
            raise ValueError(f"--opset {self.opset} is too old: LayerNormalization needs 17; use --opset 17")
        _check_positive("tolerance", self.tolerance)
        _check_range("int8_min_agreement", self.int8_min_agreement, 0.0, 100.0)
        _check_range("int8_max_accuracy_drop", self.int8_max_accuracy_drop, 0.0, 100.0)
        if self.max_validation_clips is not None and self.max_validation_clips < 1:
            raise ValueError(f"--max-validation-clips {self.max_validation_clips} must be at least 1 (or leave it out)")


# ---------------------------------------------------------------------------------------------
# Dataclass <-> argparse, so the CLI never restates a default or a help string.


def _unwrap_optional(tp):
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = ()) -> None:
    """Add one `--field-name` option per dataclass field, with its type, default and help."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp = _unwrap_optional(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flag = "--" + f.name.replace("_", "-")
        kw = {"dest": f.name, "default": default, "help": f.metadata.get("help", "")}
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is list:
            kw["type"] = _comma_list
            kw["metavar"] = "A,B,..."
        else:
            kw["type"] = tp
        if default not in (None, False) and "action" not in kw:
            kw["help"] += f" (default: {','.join(default) if isinstance(default, list) else default})"
        parser.add_argument(flag, **kw)


def _comma_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def from_namespace(cls, ns: argparse.Namespace, **overrides):
    """Build dataclass `cls` from the parsed options that match its fields."""
    values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if hasattr(ns, f.name)}
    values.update(overrides)
    return cls(**values)
