"""Training augmentation on raw waveforms: time shift, room reverb, background noise, gain, device colouring.

    augmenter = Augmenter.from_folder(AugmentConfig(), "data/speech_commands")
    noisy = augmenter(clean, clip_rng(seed, epoch, index))

Randomness. Every draw comes from the `np.random.Generator` passed to `__call__`; nothing touches the `random`
or `np.random` globals (audiomentations' `randomize_parameters` do, so its transforms are used only through
`.apply()` with `.parameters` set here). The generator for a clip is `clip_rng(seed, epoch, index)`, keyed by
the run seed, the epoch number and the clip's index in the training split. That is how "augmented on the fly,
freshly sampled every epoch, seeded per worker" is achieved, and it is strictly stronger than seeding each
data-loader worker: a clip's augmentation is new every epoch, yet identical whatever the worker count, the
shuffle order or the process that happens to load it, and a resumed run (same seed, same epoch) replays it
exactly. Use the split index (the `i` of `dataset[i]`), never the position in a batch. With persistent
data-loader workers the epoch must reach the workers with the index (e.g. a sampler yielding `(epoch, i)`),
since an attribute set in the main process after the workers started is not seen by them.

The chain, each stage drawn on its own:
  1. time shift of up to +/- `shift_ms`, zero-filled (audiomentations `Shift`, `rollover=False`): a keyword
     pushed off one end must not reappear at the other;
  2. reverb with probability `reverb_prob`: a synthetic room impulse response (direct path plus exponentially
     decaying noise, RT60 in `RT60_RANGE_S`), level-matched so the SNR below refers to the reverberant speech;
  3. background noise with probability `noise_prob`: a random crop of a random recording (looped when shorter
     than the clip) at an SNR uniform in [`min_snr_db`, `max_snr_db`] relative to the clip's RMS;
  4. gain uniform in +/- `gain_db` (audiomentations `Gain`; +/- 20 dB by default, from a quiet talker far
     away to a loud one at the microphone), then clipped to [-1, 1] as a real ADC would: a loud talker is
     recorded clipped, and `kws evaluate`'s `level:+20dB` condition plays exactly that;
  5. band-limited "device" colouring with probability `device_prob` (audiomentations `BandPassFilter`),
     last because the microphone hears the room, the noise and the level together.
Reverb comes before noise on purpose: the talker is in the room, while the noise recordings already carry
their own room. Whatever still exceeds full scale at the end (the band-pass's overshoot, or loud noise with
the gain stage off) is scaled down to peak 1: that excess is an artefact of the chain, not of a recording, so
it gets no clipping distortion.

An `Augmenter` is not thread-safe (the audiomentations transforms hold their parameters between set and
apply); data-loader workers are processes, each with its own copy.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os

import numpy as np

from kwslib.audio import AudioError, load_audio
from kwslib.config import SAMPLE_RATE, AugmentConfig

log = logging.getLogger(__name__)

SHIFT_FADE_SECONDS = 0.005  # fade-in/out at the zero-filled edge of a shift, so the cut does not click
SILENT_RMS = 1e-5  # a clip quieter than this (-100 dBFS) has no level to set an SNR against
SILENT_NOISE_RMS_DB = (-50.0, -30.0)  # absolute noise level (dBFS RMS) mixed into a silent clip
RT60_RANGE_S = (0.2, 0.8)  # reverberation time of the synthetic rooms, seconds
DRR_RANGE_DB = (0.0, 10.0)  # direct-to-reverberant energy ratio of the synthetic rooms, dB
DEVICE_LOW_CUT_HZ = (100.0, 400.0)  # band-pass low cut of the "device" colouring
DEVICE_HIGH_CUT_HZ = (3000.0, 7000.0)  # band-pass high cut of the "device" colouring (kept below 0.45 * rate)
DEVICE_ROLLOFFS_DB = (12, 18, 24)  # band-pass steepness per octave (Butterworth order 2, 3 or 4 per side)
DEVICE_MIN_SAMPLE_RATE = 8000  # below this the band-pass range above does not fit under Nyquist
PEAK_LIMIT = 1.0


def clip_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for clip `index` of the training split in `epoch`: same key, same augmentation."""
    key = {"seed": seed, "epoch": epoch, "index": index}
    for name, value in key.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"clip_rng {name}={value!r} must be an integer >= 0")
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def rms(samples: np.ndarray) -> float:
    """Root mean square of mono samples (0.0 for an empty array)."""
    if samples.size == 0:
        return 0.0
    return math.sqrt(float(np.dot(samples, samples)) / samples.size)


def synthetic_rir(sample_rate: int, rt60_s: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """A room impulse response: a unit direct path plus Gaussian noise decaying 60 dB over `rt60_s` seconds,
    scaled so the direct-to-reverberant energy ratio is `drr_db`."""
    if not rt60_s > 0:
        raise ValueError(f"rt60_s {rt60_s} must be greater than 0")
    length = max(2, int(round(rt60_s * sample_rate)))
    t = np.arange(length) / sample_rate
    # Energy falls 60 dB over RT60, so amplitude falls by 10**-3: exp(-ln(1000) t / RT60).
    ir = rng.standard_normal(length) * np.exp(-math.log(1000.0) * t / rt60_s)
    ir[0] = 0.0
    ir *= math.sqrt(10.0 ** (-drr_db / 10.0) / float(np.dot(ir, ir)))
    ir[0] = 1.0
    return ir.astype(np.float32)


def mix_at_snr(samples: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`samples + noise`, the noise scaled so that rms(samples) / rms(noise) is `snr_db` (same lengths)."""
    if len(noise) != len(samples):
        raise ValueError(f"noise has {len(noise)} samples, the clip {len(samples)}; crop or loop it first")
    noise_rms, clean_rms = rms(noise), rms(samples)
    if noise_rms == 0.0 or clean_rms == 0.0:
        raise ValueError("mix_at_snr needs a clip and a noise that are not silent")
    return samples + noise * np.float32(clean_rms * 10.0 ** (-snr_db / 20.0) / noise_rms)


class Augmenter:
    """The training augmentation chain of an `AugmentConfig`; see the module docstring."""

    def __init__(self, cfg: AugmentConfig, noises: list[np.ndarray], sample_rate: int = SAMPLE_RATE):
        if not isinstance(cfg, AugmentConfig):
            raise TypeError(f"cfg must be an AugmentConfig, got {type(cfg).__name__}")
        # replace() re-runs the config's checks (fields may have been changed after construction) and gives
        # this augmenter its own copy, so later edits to `cfg` cannot change it half-way through a run.
        self.cfg = dataclasses.replace(cfg)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ValueError(f"sample_rate {sample_rate!r} must be a positive integer (Hz), e.g. {SAMPLE_RATE}")
        self.sample_rate = int(sample_rate)
        self.noises = self._check_noises(noises)
        if self.cfg.enabled and self.cfg.noise_prob > 0 and not self.noises:
            raise ValueError(
                f"--noise-prob {self.cfg.noise_prob} needs background noise recordings, but noises is empty; "
                "pass some (e.g. Augmenter.from_folder on a Speech Commands folder) or set --noise-prob 0"
            )
        if self.cfg.enabled and self.cfg.device_prob > 0 and self.sample_rate < DEVICE_MIN_SAMPLE_RATE:
            raise ValueError(
                f"--device-prob {self.cfg.device_prob} needs sample_rate >= {DEVICE_MIN_SAMPLE_RATE} "
                f"(got {self.sample_rate}) for its band-pass range; set --device-prob 0"
            )
        # Imported here, not at module level: scipy.signal (pulled in by audiomentations) takes over a second.
        from audiomentations import BandPassFilter, Gain, Shift

        self.max_shift = int(round(self.cfg.shift_ms / 1000.0 * self.sample_rate))
        self._shift = Shift(
            min_shift=-self.max_shift,
            max_shift=self.max_shift,
            shift_unit="samples",
            rollover=False,
            fade_duration=SHIFT_FADE_SECONDS,
            p=1.0,
        )
        self._gain = Gain(min_gain_db=-self.cfg.gain_db, max_gain_db=self.cfg.gain_db, p=1.0)
        self._band_pass = BandPassFilter(
            min_rolloff=min(DEVICE_ROLLOFFS_DB), max_rolloff=max(DEVICE_ROLLOFFS_DB), zero_phase=False, p=1.0
        )

    @staticmethod
    def _check_noises(noises) -> list[np.ndarray]:
        if isinstance(noises, np.ndarray) or not isinstance(noises, (list, tuple)):
            raise ValueError(
                f"noises must be a list of 1-D float arrays, got {type(noises).__name__}; wrap one recording: [noise]"
            )
        out = []
        for i, noise in enumerate(noises):
            if not isinstance(noise, np.ndarray):
                raise ValueError(f"noises[{i}] is a {type(noise).__name__}; it must be a 1-D float numpy array")
            if noise.ndim != 1:
                raise ValueError(f"noises[{i}] has shape {noise.shape}; it must be 1-D (mono), e.g. load_audio(path)")
            if noise.dtype.kind != "f":
                raise ValueError(
                    f"noises[{i}] has dtype {noise.dtype}; it must be float samples in [-1, 1], e.g. load_audio(path)"
                )
            if noise.size == 0:
                raise ValueError(f"noises[{i}] is empty (0 samples)")
            if not np.isfinite(noise).all():
                raise ValueError(f"noises[{i}] holds NaN or Inf samples")
            if not np.any(noise):
                raise ValueError(f"noises[{i}] is silent (all zeros); it cannot be mixed in at an SNR")
            out.append(np.ascontiguousarray(noise, dtype=np.float32))
        return out

    @classmethod
    def from_folder(cls, cfg: AugmentConfig, root: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> Augmenter:
        """An augmenter mixing in the `_background_noise_/` recordings of a Speech Commands folder.

        Unreadable or silent recordings are skipped with a warning, as the data loader does.
        """
        # Lazy: kwslib.data imports `datasets`, which this module does not otherwise need.
        from kwslib.data.speech_commands import background_noise_files
        from kwslib.labels import BACKGROUND_NOISE_DIR

        noises = []
        if cfg.enabled and cfg.noise_prob > 0:
            for path in background_noise_files(root):
                try:
                    noise = load_audio(path, sample_rate)
                except AudioError as err:
                    log.warning("skipping background noise: %s", err)
                    continue
                if not np.any(noise):
                    log.warning("skipping background noise: %s is silent", path)
                    continue
                noises.append(noise)
            if not noises:
                raise ValueError(
                    f"{root}: no usable {BACKGROUND_NOISE_DIR}/ recordings to mix in as noise; "
                    "add some, or set --noise-prob 0"
                )
        return cls(cfg, noises, sample_rate)

    def __repr__(self) -> str:
        return f"Augmenter({self.cfg!r}, noises={len(self.noises)}, sample_rate={self.sample_rate})"

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """An augmented copy of mono float32 `samples` (same length, finite, peak <= 1); `samples` when disabled."""
        if not self.cfg.enabled:
            return samples
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"rng must be a np.random.Generator, e.g. clip_rng(seed, epoch, index); got {type(rng).__name__}"
            )
        x = self._check_samples(samples)
        if x.size == 0:
            return x
        x = self.shift(x, rng)
        if rng.random() < self.cfg.reverb_prob:
            x = self.reverb(x, rng)
        if rng.random() < self.cfg.noise_prob:
            x = self.add_noise(x, rng)
        x = self.gain(x, rng)
        if rng.random() < self.cfg.device_prob:
            x = self.device(x, rng)
        peak = float(np.max(np.abs(x)))
        if peak > PEAK_LIMIT:
            x = x * np.float32(PEAK_LIMIT / peak)
        return np.clip(x, -PEAK_LIMIT, PEAK_LIMIT).astype(np.float32, copy=False)

    @staticmethod
    def _check_samples(samples) -> np.ndarray:
        if not isinstance(samples, np.ndarray) or samples.ndim != 1 or samples.dtype.kind != "f":
            shape = getattr(samples, "shape", None)
            dtype = getattr(samples, "dtype", type(samples).__name__)
            raise ValueError(f"samples must be a 1-D float32 array (mono), got shape {shape} dtype {dtype}")
        x = np.ascontiguousarray(samples, dtype=np.float32)
        if not np.isfinite(x).all():
            raise ValueError(
                "samples hold NaN or Inf; decode clips through kwslib.audio.load_audio, which rejects them"
            )
        return x

    # Each stage: (samples, rng) -> samples of the same length, float32. Public so that one can be listened to.

    def shift(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Shift by a uniform whole number of samples in +/- shift_ms, zero-filling the vacated end."""
        limit = min(self.max_shift, len(samples) - 1)  # a shift by the whole length would leave nothing to fade
        if limit <= 0:
            return samples
        self._shift.parameters = {"should_apply": True, "shift_amount": int(rng.integers(-limit, limit + 1))}
        return self._shift.apply(samples, self.sample_rate)

    def reverb(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Convolve with a synthetic room impulse response; the result keeps the input's RMS and length."""
        from scipy.signal import fftconvolve

        ir = synthetic_rir(self.sample_rate, rng.uniform(*RT60_RANGE_S), rng.uniform(*DRR_RANGE_DB), rng)
        wet = fftconvolve(samples, ir)[: len(samples)].astype(np.float32, copy=False)
        wet_rms, dry_rms = rms(wet), rms(samples)
        if wet_rms == 0.0:
            return samples
        return wet * np.float32(dry_rms / wet_rms)

    def add_noise(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Mix in a random crop of a random noise recording at a random SNR (or a low level if the clip is silent)."""
        noise = self.noises[int(rng.integers(len(self.noises)))]
        n = len(samples)
        if len(noise) >= n:
            start = int(rng.integers(len(noise) - n + 1))
            crop = noise[start : start + n]
        else:  # loop the recording, starting anywhere in it
            start = int(rng.integers(len(noise)))
            crop = np.take(noise, np.arange(start, start + n) % len(noise))
        snr_db = rng.uniform(self.cfg.min_snr_db, self.cfg.max_snr_db)
        silent_level_db = rng.uniform(*SILENT_NOISE_RMS_DB)  # drawn always, so the draws after it do not move
        noise_rms = rms(crop)
        if noise_rms == 0.0:  # a stretch of digital silence in the recording: nothing to add
            return samples
        clean_rms = rms(samples)
        if clean_rms < SILENT_RMS:
            return samples + crop * np.float32(10.0 ** (silent_level_db / 20.0) / noise_rms)
        return samples + crop * np.float32(clean_rms * 10.0 ** (-snr_db / 20.0) / noise_rms)

    def gain(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Scale by a uniform gain in +/- gain_db, then clip to [-1, 1]."""
        if self.cfg.gain_db == 0:
            return samples
        gain_db = rng.uniform(-self.cfg.gain_db, self.cfg.gain_db)
        self._gain.parameters = {"should_apply": True, "amplitude_ratio": 10.0 ** (gain_db / 20.0)}
        louder = self._gain.apply(samples, self.sample_rate).astype(np.float32, copy=False)
        # Clipped, not rescaled, as a real ADC would clip it: at +20 dB a normal-level word exceeds full scale,
        # and the model should learn what such a word sounds like (kwslib.conditions' level:+20dB does the same).
        return np.clip(louder, -PEAK_LIMIT, PEAK_LIMIT)

    def device(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Band-pass like a small microphone or a phone line: a random low cut, high cut and steepness."""
        low = rng.uniform(*DEVICE_LOW_CUT_HZ)
        high = min(rng.uniform(*DEVICE_HIGH_CUT_HZ), 0.45 * self.sample_rate)
        rolloff = int(rng.choice(DEVICE_ROLLOFFS_DB))
        self._band_pass.parameters = {
            "should_apply": True,
            "rolloff": rolloff,
            "center_freq": (low + high) / 2.0,
            "bandwidth": high - low,
        }
        return self._band_pass.apply(samples, self.sample_rate)
