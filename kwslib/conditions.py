"""Deterministic evaluation conditions: noise type x SNR, device profiles and input levels for test clips.

    corruptor = Corruptor(background=noises, babble_pool=[(speaker, clip), ...], seed=0)
    for condition in corruptor.available(default_conditions()):
        noisy = corruptor.apply(clip, condition, key=index, speaker_id=speaker)

Determinism. A clip's corruption is drawn from `np.random.default_rng([seed, crc32(condition.name), crc32(key)])`,
so the same clip (same `key`, e.g. its test-split index or path) gets byte-identical audio in every run, in any
order, in any process, whatever else was corrupted before it; a different key gets a different draw. `zlib.crc32`
of the text is used because Python's `hash()` of a string changes from process to process. Nothing touches the
`random` or `np.random` globals. The babble pool and the background recordings must be passed in the same order
for runs to be comparable (their indices are drawn).

Noise (`<type>@<snr>dB`), added at an SNR relative to the clip's RMS, exactly: 20*log10(rms(clean)/rms(out-clean))
is the requested SNR up to float rounding. The output is not clipped or rescaled (either would change the SNR);
the level conditions study clipping.
  white       Gaussian noise with a flat spectrum: the textbook reference, heavy in the high bands.
  pink        1/f noise shaped in the FFT domain (flat below `PINK_MIN_HZ`, as the colorednoise package does): equal
              energy per octave, closer to fans, traffic and HVAC than white noise.
  babble      4 to 6 other talkers: clips of the babble pool from speakers other than the clip's own (a model can
              otherwise "hear" the word it is asked about in the noise), each looped from a random offset and
              scaled to the same RMS. Speech-shaped and non-stationary, the hardest noise for keyword spotting.
  background  a random crop of a random recording of the dataset's `_background_noise_/` (looped when shorter):
              the noise the dataset ships, at an SNR we control.
A clip whose RMS is below `SILENT_RMS` (a `_silence_` example of digital zero has no level to set an SNR against)
gets the noise at an absolute level instead: `SILENT_REFERENCE_DBFS - snr_db` dBFS RMS, i.e. the noise a
typical-level word would hear at that SNR. So the SNR axis still orders silent clips from quiet to loud noise.

Devices (`device:<name>`), the microphone and channel between talker and model:
  studio       unchanged: the reference the other profiles are compared with.
  telephone    a narrowband call: 300-3400 Hz band-pass, down to 8 kHz, G.711-style 8-bit mu-law companding,
               back up. Loses the /s/ energy above 3.4 kHz of "yes", "six", "seven" and "stop".
  laptop       a built-in laptop microphone: high-pass at `LAPTOP_HIGH_PASS_HZ` (a tiny capsule in a thin case has
               no bass), preamp hiss at `LAPTOP_HISS_DBFS`, and the mild soft-knee 3:1 compression of the voice
               processing, which flattens the loud onsets a model may key on.
  far_field    a smart speaker across the room: a reverberant room (RT60 `FAR_FIELD_RT60_S`, direct-to-reverberant
               ratio `FAR_FIELD_DRR_DB`, i.e. beyond the critical distance), the level attenuated by distance, and
               highs absorbed by air and furnishings (low-pass at `FAR_FIELD_LOW_PASS_HZ`). The rooms are a bank of
               `FAR_FIELD_ROOMS` synthetic impulse responses drawn once from the seed; each clip is placed in one.
  cheap_mic    a cheap headset or toy microphone: a narrow band (`CHEAP_MIC_BAND_HZ`) and a preamp driven into
               hard clipping (each clip's peak pushed `CHEAP_MIC_DRIVE_DB` over full scale, gain capped at
               `CHEAP_MIC_MAX_GAIN_DB` so near-silent clips are not blown up to noise).
  lossy_codec  a real low-bitrate codec round trip through libsndfile (`CODEC`: MP3 at 16 kbit/s CBR, as in
               voice messages and low-bandwidth streams): band limit near 5 kHz, pre-echo and "swirly" artefacts.
               The decoder's constant delay is measured once with a probe signal and removed, so the output lines
               up with the input sample for sample and keeps its length.

Levels (`level:<gain>dB`): the clip scaled by the gain, then clipped to [-1, 1] as a real ADC would. The quiet
level (-30 dB) tests whether the model relies on absolute loudness; the loud one (+20 dB) adds clipping.

Speed on 1 s clips, CPU time of one core (`benchmarks/evaluation.py --conditions-only`; a shared 2-core machine, so +/- 20 %), clips/s:
clean, studio and levels > 10k; white ~3k, pink ~1.8k, babble ~2.5k, background ~7k; telephone ~900,
laptop ~800, far_field ~1.4k, cheap_mic ~2.7k; lossy_codec ~70 (LAME encodes at ~12 ms per second of audio).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import re
import zlib
from dataclasses import dataclass

import numpy as np

from kwslib.audio import fix_length, resample
from kwslib.augment import SILENT_RMS, mix_at_snr, rms, synthetic_rir
from kwslib.config import SAMPLE_RATE

NOISE_TYPES = ("white", "pink", "babble", "background")
SNRS_DB = (20.0, 10.0, 5.0, 0.0, -5.0)
DEVICES = ("studio", "telephone", "laptop", "far_field", "cheap_mic", "lossy_codec")
LEVELS_DB = (-30.0, 20.0)  # quiet and loud input levels: gain in dB, then clipped to [-1, 1]
KINDS = ("clean", "noise", "device", "level")

MIN_SAMPLE_RATE = 16_000  # the device filters below (up to 5 kHz) and the telephone's 8 kHz leg need this much
CLIP_LEVEL = 1.0  # full scale of a float ADC

# Noise
SILENT_REFERENCE_DBFS = -26.0  # speech level a silent clip's noise is set against (the usual -26 dBov of ITU-T P.56)
PINK_MIN_HZ = 20.0  # below this the pink spectrum is flat: 1/f rumble nobody can hear would otherwise eat the SNR
BABBLE_TALKERS = (4, 6)  # how many pool clips are summed, inclusive range
BABBLE_MIN_POOL = 3  # fewer usable pool clips than this cannot make babble
MAX_CROP_TRIES = 8  # redraws when a crop of a recording is digital silence

# telephone
TELEPHONE_BAND_HZ = (300.0, 3400.0)  # the ITU-T narrowband telephone band
TELEPHONE_ORDER = 4  # Butterworth order per band edge
TELEPHONE_RATE = 8_000
MU_LAW_MU = 255
MU_LAW_BITS = 8

# laptop
LAPTOP_HIGH_PASS_HZ = 180.0
LAPTOP_HIGH_PASS_ORDER = 2
LAPTOP_HISS_DBFS = -55.0  # RMS of the preamp's white hiss
LAPTOP_THRESHOLD_DBFS = -24.0  # compressor threshold on the short-term RMS envelope
LAPTOP_RATIO = 3.0
LAPTOP_KNEE_DB = 10.0
LAPTOP_ENVELOPE_S = 0.010  # time constant of the RMS envelope: fast enough to catch a syllable onset

# far_field
FAR_FIELD_RT60_S = 0.7  # a furnished living room is 0.4-0.8 s
FAR_FIELD_DRR_DB = -5.0  # more reverberant than direct energy: the talker is beyond the critical distance
FAR_FIELD_ATTENUATION_DB = -12.0  # 1/r law: four times the distance of a close-talking recording
FAR_FIELD_LOW_PASS_HZ = 5_000.0
FAR_FIELD_LOW_PASS_ORDER = 2
FAR_FIELD_ROOMS = 32  # rooms drawn once from the seed, one per clip: a fresh RIR per clip is several times slower
MAX_CACHED_LENGTHS = 4  # clip lengths whose FFT-domain filters are kept

# cheap_mic
CHEAP_MIC_BAND_HZ = (250.0, 5_000.0)
CHEAP_MIC_ORDER = 2
CHEAP_MIC_DRIVE_DB = 6.0  # the clip's peak is driven this far over full scale, then clipped
CHEAP_MIC_MAX_GAIN_DB = 30.0

# lossy_codec: libsndfile maps compression_level 0.95 of a constant-bitrate MP3 to LAME's 16 kbit/s.
CODEC = {"format": "MP3", "subtype": "MPEG_LAYER_III", "bitrate_mode": "CONSTANT", "compression_level": 0.95}
CODEC_MAX_DELAY = 4_096  # samples; LAME + mpg123 delay 1105 at 16 kHz (no gapless trimming in CBR)
CODEC_PROBE_SECONDS = 0.5

_DB = r"([+-]?\d+(?:\.\d+)?)(?i:db)"
_NOISE_NAME = re.compile(rf"(\w+)@{_DB}")
_DEVICE_NAME = re.compile(r"device:(\w+)")
_LEVEL_NAME = re.compile(rf"level:{_DB}")
_NAME_FORMS = (
    "'clean', '<noise>@<snr>dB' (e.g. babble@0dB), 'device:<name>' (e.g. device:telephone) "
    "or 'level:<gain>dB' (e.g. level:-30dB)"
)


def stable_hash(value: int | str) -> int:
    """CRC-32 of the value's text: the same in every process and run, unlike `hash()` of a string."""
    return zlib.crc32(str(value).encode("utf-8"))


def _db_text(value: float, sign: bool = False) -> str:
    value = float(value) + 0.0  # -0.0 + 0.0 is 0.0: no "-0dB" name
    return f"{value:+g}" if sign else f"{value:g}"


def _check_db(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what} {value!r} must be a number of dB, e.g. 10.0")
    if not math.isfinite(value):
        raise ValueError(f"{what} {value!r} must be a finite number of dB, e.g. 10.0")
    return float(value) + 0.0


def _check_choice(value, valid: tuple[str, ...], what: str) -> str:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


@dataclass(frozen=True)
class Condition:
    """One evaluation condition. `name` is unique and stable (a metrics.json key) and must match the fields;
    build one with `Condition.clean()`, `for_noise`, `for_device`, `for_level` or `from_name`."""

    name: str
    kind: str
    noise: str | None = None
    snr_db: float | None = None
    device: str | None = None
    level_db: float | None = None

    def __post_init__(self):
        _check_choice(self.kind, KINDS, "condition kind")
        wanted = {
            "clean": (),
            "noise": ("noise", "snr_db"),
            "device": ("device",),
            "level": ("level_db",),
        }[self.kind]
        for field in ("noise", "snr_db", "device", "level_db"):
            value = getattr(self, field)
            if field in wanted and value is None:
                raise ValueError(f"a {self.kind} condition needs {field}; e.g. {self._example()}")
            if field not in wanted and value is not None:
                raise ValueError(f"a {self.kind} condition has no {field} (got {value!r}); e.g. {self._example()}")
        if self.kind == "noise":
            _check_choice(self.noise, NOISE_TYPES, "noise type")
            object.__setattr__(self, "snr_db", _check_db(self.snr_db, "snr_db"))
            expected = f"{self.noise}@{_db_text(self.snr_db)}dB"
        elif self.kind == "device":
            _check_choice(self.device, DEVICES, "device")
            expected = f"device:{self.device}"
        elif self.kind == "level":
            object.__setattr__(self, "level_db", _check_db(self.level_db, "level_db"))
            expected = f"level:{_db_text(self.level_db, sign=True)}dB"
        else:
            expected = "clean"
        if self.name != expected:
            raise ValueError(
                f"condition name {self.name!r} does not match its fields (expected {expected!r}); "
                "build conditions with Condition.from_name(...) or Condition.for_noise/for_device/for_level"
            )

    def _example(self) -> str:
        return {
            "clean": "Condition.clean()",
            "noise": "Condition.for_noise('white', 10.0)",
            "device": "Condition.for_device('telephone')",
            "level": "Condition.for_level(-30.0)",
        }[self.kind]

    @classmethod
    def clean(cls) -> Condition:
        return cls("clean", "clean")

    @classmethod
    def for_noise(cls, noise: str, snr_db: float) -> Condition:
        _check_choice(noise, NOISE_TYPES, "noise type")
        snr_db = _check_db(snr_db, "snr_db")
        return cls(f"{noise}@{_db_text(snr_db)}dB", "noise", noise=noise, snr_db=snr_db)

    @classmethod
    def for_device(cls, device: str) -> Condition:
        _check_choice(device, DEVICES, "device")
        return cls(f"device:{device}", "device", device=device)

    @classmethod
    def for_level(cls, level_db: float) -> Condition:
        level_db = _check_db(level_db, "level_db")
        return cls(f"level:{_db_text(level_db, sign=True)}dB", "level", level_db=level_db)

    @classmethod
    def from_name(cls, name: str) -> Condition:
        """The condition a name like 'clean', 'babble@-5dB', 'device:telephone' or 'level:+20dB' stands for."""
        if not isinstance(name, str):
            raise TypeError(f"a condition name must be a string, got {type(name).__name__}; e.g. 'babble@0dB'")
        if name == "clean":
            return cls.clean()
        if match := _NOISE_NAME.fullmatch(name):
            if match[1] not in NOISE_TYPES:
                raise ValueError(f"unknown noise type {match[1]!r} in {name!r}; valid: {', '.join(NOISE_TYPES)}")
            return cls.for_noise(match[1], float(match[2]))
        if match := _DEVICE_NAME.fullmatch(name):
            if match[1] not in DEVICES:
                raise ValueError(f"unknown device {match[1]!r} in {name!r}; valid: {', '.join(DEVICES)}")
            return cls.for_device(match[1])
        if match := _LEVEL_NAME.fullmatch(name):
            return cls.for_level(float(match[1]))
        raise ValueError(f"unknown condition {name!r}; use {_NAME_FORMS}")

    @classmethod
    def from_dict(cls, data: dict) -> Condition:
        """The condition of a `to_dict()` (extra keys, such as a metrics.json result's accuracy, are ignored)."""
        if not isinstance(data, dict):
            raise TypeError(
                f"Condition.from_dict needs a dict like Condition.to_dict() gives, got {type(data).__name__}"
            )
        return cls(**{f.name: data.get(f.name) for f in dataclasses.fields(cls)})

    def to_dict(self) -> dict:
        """JSON-ready fields, as stored in metrics.json."""
        return dataclasses.asdict(self)


def _names(values, what: str, example: str) -> tuple:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{what} must be a list or tuple, got {type(values).__name__} {values!r}; e.g. {example}")
    return tuple(values)


def default_conditions(
    noise_types=NOISE_TYPES, snrs_db=SNRS_DB, devices=DEVICES, levels_db=LEVELS_DB
) -> list[Condition]:
    """'clean', then every noise type at every SNR (type-major, SNRs in the order given), devices, levels."""
    noise_types = _names(noise_types, "noise_types", "('white', 'babble')")
    snrs_db = _names(snrs_db, "snrs_db", "(10.0, 0.0)")
    devices = _names(devices, "devices", "('telephone',)")
    levels_db = _names(levels_db, "levels_db", "(-30.0,)")
    for noise in noise_types:
        _check_choice(noise, NOISE_TYPES, "noise type")
    for device in devices:
        _check_choice(device, DEVICES, "device")
    out = [Condition.clean()]
    out += [Condition.for_noise(noise, snr) for noise in noise_types for snr in snrs_db]
    out += [Condition.for_device(device) for device in devices]
    out += [Condition.for_level(level) for level in levels_db]
    _check_unique(out)
    return out


def _check_unique(conditions: list[Condition]) -> None:
    seen = set()
    for condition in conditions:
        if condition.name in seen:
            raise ValueError(f"condition {condition.name!r} is listed twice; list each condition once")
        seen.add(condition.name)


def parse_conditions(spec: str) -> list[Condition]:
    """Conditions of a command-line value: 'all', or a comma list of names like 'clean,babble@0dB,device:telephone'."""
    if not isinstance(spec, str):
        raise TypeError(f"conditions must be a string like 'all' or 'clean,babble@0dB', got {type(spec).__name__}")
    if spec.strip() == "all":
        return default_conditions()
    items = [item.strip() for item in spec.split(",")]
    if "" in items:
        raise ValueError(
            f"--conditions {spec!r} has an empty entry; separate names with single commas, no trailing one"
        )
    if "all" in items:
        raise ValueError(f"--conditions {spec!r}: 'all' cannot be combined with other names; give 'all' alone")
    conditions = []
    for item in items:
        try:
            conditions.append(Condition.from_name(item))
        except ValueError as err:
            raise ValueError(f"--conditions {spec!r}: {err}; or 'all'") from None
    _check_unique(conditions)
    return conditions


def mu_law(samples: np.ndarray, mu: int = MU_LAW_MU, bits: int = MU_LAW_BITS) -> np.ndarray:
    """Mu-law compand, quantise to `bits` and expand back (G.711 as a continuous curve), float32 out.

    A mid-tread quantiser: 2**bits - 1 levels, zero maps to exactly zero (G.711 has +0 and -0 codes instead).
    Input beyond [-1, 1] saturates, as the codec does.
    """
    levels, edges = _mu_law_table(int(mu), int(bits))
    return levels[np.searchsorted(edges, samples)]


@functools.cache
def _mu_law_table(mu: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The output levels of `mu_law` and the linear input values halfway between them in the companded domain.

    Rounding in the companded domain is the same as finding the interval between these edges, and searchsorted
    on 254 edges is several times faster than a log and an exp per sample.
    """
    if mu <= 0 or bits < 2:
        raise ValueError(f"mu_law needs mu > 0 and bits >= 2, got mu={mu}, bits={bits}")
    steps = 2 ** (bits - 1) - 1

    def expand(companded):
        return np.sign(companded) * np.expm1(np.abs(companded) * math.log1p(mu)) / mu

    codes = np.arange(-steps, steps + 1) / steps
    return expand(codes).astype(np.float32), expand((codes[:-1] + codes[1:]) / 2.0)


@functools.lru_cache(maxsize=MAX_CACHED_LENGTHS)
def _pink_shape(n: int, sample_rate: int) -> np.ndarray:
    """Amplitude ~ 1/sqrt(f) over the rfft bins of `n` samples (power ~ 1/f), flat below PINK_MIN_HZ, no DC."""
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / sample_rate), PINK_MIN_HZ)
    shape = (1.0 / np.sqrt(freqs)).astype(np.float32)
    shape[0] = 0.0
    return shape


def _as_samples(samples, what: str) -> np.ndarray:
    """`samples` as contiguous float32, or TypeError/ValueError saying what is wrong and how to fix it."""
    if not isinstance(samples, np.ndarray):
        raise TypeError(
            f"{what} must be a 1-D numpy float array, got {type(samples).__name__}; "
            "decode clips with kwslib.audio.load_audio"
        )
    if samples.dtype.kind != "f":
        raise TypeError(
            f"{what} has dtype {samples.dtype}; pass float samples in [-1, 1] "
            "(kwslib.audio.load_audio, or x.astype(np.float32) / 32768 for int16)"
        )
    if samples.ndim != 1:
        raise ValueError(f"{what} has shape {samples.shape}; pass mono 1-D samples (kwslib.audio.to_mono)")
    if samples.size == 0:
        raise ValueError(f"{what} is empty (0 samples)")
    x = np.ascontiguousarray(samples, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise ValueError(
            f"{what} holds {bad} NaN or Inf samples; decode through kwslib.audio.load_audio, which rejects them"
        )
    return x


def _trim_zeros(x: np.ndarray) -> np.ndarray:
    # Padding of digital zero at the ends would let a looped crop land on pure silence.
    nonzero = np.flatnonzero(x)
    return x[nonzero[0] : nonzero[-1] + 1]


def _loop_crop(recording: np.ndarray, length: int, start: int) -> np.ndarray:
    """`length` samples of `recording` from `start`, wrapping around to its beginning when it runs out."""
    if start + length <= len(recording):
        return recording[start : start + length]
    return np.tile(recording, -(-(start + length) // len(recording)))[start : start + length]


@functools.cache
def _codec_delay(sample_rate: int) -> tuple[int | None, str | None]:
    """(delay in samples, None) of the CODEC round trip at this rate, or (None, why it cannot run here)."""
    from scipy.signal import correlate

    probe = (0.1 * np.random.default_rng(0).standard_normal(int(CODEC_PROBE_SECONDS * sample_rate))).astype(np.float32)
    try:
        decoded = _codec_round_trip(probe, sample_rate)
    except Exception as err:  # any libsndfile failure means "this build cannot do it"
        import soundfile

        return None, (
            f"libsndfile {soundfile.__libsndfile_version__} cannot round-trip {CODEC['format']} "
            f"{CODEC['subtype']} at {sample_rate} Hz ({err}); install a soundfile wheel with libsndfile >= 1.1"
        )
    lags = correlate(decoded[: len(probe) + CODEC_MAX_DELAY], probe, mode="full", method="fft")
    lags = lags[len(probe) - 1 : len(probe) - 1 + CODEC_MAX_DELAY + 1]  # lag 0 .. CODEC_MAX_DELAY
    return int(np.argmax(lags)), None


def _codec_round_trip(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    import soundfile as sf

    options = {k: v for k, v in CODEC.items() if k not in ("format", "subtype")}
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format=CODEC["format"], subtype=CODEC["subtype"], **options)
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32")
    return decoded if decoded.ndim == 1 else decoded.mean(axis=1, dtype=np.float32)


class Corruptor:
    """Applies conditions to clips, deterministically per (seed, condition, key); see the module docstring.

    `background`: the dataset's `_background_noise_/` recordings (mono float at `sample_rate`, any length, none
    silent). `babble_pool`: (speaker_id, clip) speech clips to make babble from, in a fixed order; a few hundred
    are plenty. Silent pool clips (e.g. `_silence_` examples) are skipped; a speaker_id of "" or None is unknown
    and never excluded.
    """

    def __init__(
        self,
        background: list[np.ndarray] | None = None,
        babble_pool: list[tuple[str, np.ndarray]] | None = None,
        *,
        seed: int = 0,
        sample_rate: int = SAMPLE_RATE,
    ):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed {seed!r} must be an integer >= 0")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
            raise TypeError(f"sample_rate {sample_rate!r} must be an integer number of Hz, e.g. {SAMPLE_RATE}")
        if sample_rate < MIN_SAMPLE_RATE:
            raise ValueError(
                f"sample_rate {sample_rate} is below {MIN_SAMPLE_RATE} Hz, too low for the device profiles; "
                f"resample the clips to {SAMPLE_RATE} (kwslib.audio.resample)"
            )
        self.seed = int(seed)
        self.sample_rate = int(sample_rate)
        self.background = self._check_background(background)
        self._pool, self._pool_scale, self._pool_speakers, self._speaker_codes = self._check_pool(babble_pool)
        self._babble_unavailable = None
        if len(self._pool) < BABBLE_MIN_POOL:
            self._babble_unavailable = (
                f"babble needs at least {BABBLE_MIN_POOL} non-silent speech clips in babble_pool, got {len(self._pool)}"
            )
        elif np.all(self._pool_speakers == self._pool_speakers[0]) and self._pool_speakers[0] >= 0:
            self._babble_unavailable = (
                "every babble_pool clip is from one speaker, whose own clips cannot be babbled over"
            )

        # Lazy: scipy.signal takes about a second to import, and `import kwslib.conditions` should not.
        from scipy.signal import butter

        def sos(order, cutoff, btype):
            return butter(order, cutoff, btype, fs=self.sample_rate, output="sos")

        # The telephone band is filtered at the line's 8 kHz rate, as the phone's codec does (and at half the cost).
        self._telephone_sos = butter(TELEPHONE_ORDER, TELEPHONE_BAND_HZ, "bandpass", fs=TELEPHONE_RATE, output="sos")
        self._laptop_sos = sos(LAPTOP_HIGH_PASS_ORDER, LAPTOP_HIGH_PASS_HZ, "highpass")
        self._far_field_sos = sos(FAR_FIELD_LOW_PASS_ORDER, FAR_FIELD_LOW_PASS_HZ, "lowpass")
        self._rooms: np.ndarray | None = None  # (FAR_FIELD_ROOMS, taps), made on first use
        self._room_spectra: dict[int, np.ndarray] = {}  # FFT size -> (FAR_FIELD_ROOMS, bins)
        self._cheap_mic_sos = sos(CHEAP_MIC_ORDER, CHEAP_MIC_BAND_HZ, "bandpass")

    @staticmethod
    def _check_background(background) -> list[np.ndarray]:
        if background is None:
            return []
        if isinstance(background, np.ndarray) or not isinstance(background, (list, tuple)):
            raise TypeError(
                f"background must be a list of 1-D float arrays, got {type(background).__name__}; "
                "wrap one recording: [noise]"
            )
        out = []
        for i, recording in enumerate(background):
            x = _as_samples(recording, f"background[{i}]")
            if not np.any(x):
                raise ValueError(f"background[{i}] is silent (all zeros); drop it, it cannot be mixed in at an SNR")
            out.append(_trim_zeros(x))
        return out

    @staticmethod
    def _check_pool(pool) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, dict[str, int]]:
        if pool is None:
            pool = []
        if not isinstance(pool, (list, tuple)):
            raise TypeError(
                f"babble_pool must be a list of (speaker_id, clip) pairs, got {type(pool).__name__}; "
                "e.g. [('0a7c2a8d', clip), ...]"
            )
        clips, scales, speakers, codes = [], [], [], {"": -1}
        for i, item in enumerate(pool):
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise TypeError(f"babble_pool[{i}] must be a (speaker_id, clip) pair, got {type(item).__name__}")
            speaker, clip = item
            if speaker is not None and not isinstance(speaker, str):
                raise TypeError(f"babble_pool[{i}] speaker_id {speaker!r} must be a string (or None if unknown)")
            x = _as_samples(clip, f"babble_pool[{i}] clip")
            level = rms(x)
            if level < SILENT_RMS:  # a _silence_ example: no talker to add
                continue
            clips.append(_trim_zeros(x))
            scales.append(1.0 / level)  # each talker at unit RMS; the clips themselves are not copied
            speakers.append(codes.setdefault(speaker or "", len(codes)))
        return clips, np.asarray(scales, dtype=np.float32), np.asarray(speakers, dtype=np.int64), codes

    def __repr__(self) -> str:
        return (
            f"Corruptor(background={len(self.background)} recordings, babble_pool={len(self._pool)} clips, "
            f"seed={self.seed}, sample_rate={self.sample_rate})"
        )

    def why_unavailable(self, condition: Condition) -> str | None:
        """Why this corruptor cannot make `condition` (a line for metrics.json's skipped list), or None if it can."""
        if not isinstance(condition, Condition):
            raise TypeError(
                f"condition must be a Condition, got {type(condition).__name__} {condition!r}; "
                "use parse_conditions('...') or Condition.from_name('...')"
            )
        if condition.noise == "background" and not self.background:
            return "no background recordings given (pass the dataset's _background_noise_ clips as background=)"
        if condition.noise == "babble":
            return self._babble_unavailable
        if condition.device == "lossy_codec":
            return _codec_delay(self.sample_rate)[1]
        return None

    def available(self, conditions) -> list[Condition]:
        """The conditions this corruptor can make, in the order given (see `why_unavailable` for the rest)."""
        return [c for c in conditions if self.why_unavailable(c) is None]

    def _rng(self, condition: Condition, key: int | str) -> np.random.Generator:
        """The generator of one (condition, clip): the same every run and independent of call order."""
        if isinstance(key, bool) or not isinstance(key, (int, np.integer, str)):
            raise TypeError(f"key {key!r} must be an int (the clip's index) or a str (its path or id)")
        return np.random.default_rng([self.seed, stable_hash(condition.name), stable_hash(key)])

    def apply(
        self, samples: np.ndarray, condition: Condition, key: int | str, speaker_id: str | None = None
    ) -> np.ndarray:
        """`samples` under `condition`: a new float32 array of the same length, finite."""
        x = _as_samples(samples, "samples")
        reason = self.why_unavailable(condition)
        if reason is not None:
            raise ValueError(f"cannot apply {condition.name!r}: {reason}; filter with Corruptor.available()")
        if speaker_id is not None and not isinstance(speaker_id, str):
            raise TypeError(f"speaker_id {speaker_id!r} must be a string or None")
        rng = self._rng(condition, key)
        if condition.kind == "noise":
            out = self._add_noise(x, condition, rng, speaker_id or "")
        elif condition.kind == "device":
            out = getattr(self, f"_{condition.device}")(x, rng)
        elif condition.kind == "level":
            out = np.clip(x * np.float32(10.0 ** (condition.level_db / 20.0)), -CLIP_LEVEL, CLIP_LEVEL)
        else:
            out = x.copy()
        assert len(out) == len(x), (condition.name, len(out), len(x))
        return out.astype(np.float32, copy=False)

    # Noise

    def _add_noise(self, x: np.ndarray, condition: Condition, rng: np.random.Generator, speaker: str) -> np.ndarray:
        noise = getattr(self, f"_{condition.noise}_noise")(len(x), rng, speaker)
        if rms(x) < SILENT_RMS:
            level = 10.0 ** ((SILENT_REFERENCE_DBFS - condition.snr_db) / 20.0)
            return x + noise * np.float32(level / rms(noise))
        return mix_at_snr(x, noise, condition.snr_db)

    def _white_noise(self, n: int, rng: np.random.Generator, speaker: str) -> np.ndarray:
        return rng.standard_normal(n, dtype=np.float32)

    def _pink_noise(self, n: int, rng: np.random.Generator, speaker: str) -> np.ndarray:
        if n < 2:  # no spectrum to shape
            return self._white_noise(n, rng, speaker)
        from scipy.fft import irfft

        bins = n // 2 + 1
        spectrum = rng.standard_normal(bins, dtype=np.float32) + 1j * rng.standard_normal(bins, dtype=np.float32)
        return irfft(spectrum * _pink_shape(n, self.sample_rate), n).astype(np.float32)

    def _babble_noise(self, n: int, rng: np.random.Generator, speaker: str) -> np.ndarray:
        eligible = np.arange(len(self._pool))
        if speaker in self._speaker_codes and speaker:  # "" is unknown: nothing to exclude
            eligible = eligible[self._pool_speakers != self._speaker_codes[speaker]]
        if eligible.size == 0:
            raise ValueError(
                f"babble: every babble_pool clip is from speaker {speaker!r}; add clips of other speakers to the pool"
            )
        talkers = int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1))
        chosen = rng.choice(eligible, size=talkers, replace=eligible.size < talkers)
        starts = rng.integers(0, [len(self._pool[i]) for i in chosen])
        babble = np.zeros(n, dtype=np.float32)
        for i, start in zip(chosen, starts):
            babble += _loop_crop(self._pool[i], n, int(start)) * self._pool_scale[i]
        if not np.any(babble):  # every crop fell on digital silence inside long clips: take one from its start
            babble = _loop_crop(self._pool[chosen[0]], n, 0).astype(np.float32)
        return babble

    def _background_noise(self, n: int, rng: np.random.Generator, speaker: str) -> np.ndarray:
        for _ in range(MAX_CROP_TRIES):
            recording = self.background[int(rng.integers(len(self.background)))]
            start = (
                int(rng.integers(len(recording) - n + 1)) if len(recording) >= n else int(rng.integers(len(recording)))
            )
            crop = _loop_crop(recording, n, start)
            if np.any(crop):
                return crop
        raise ValueError(
            f"background: {MAX_CROP_TRIES} crops of {n} samples were all digital silence; "
            "drop background recordings with long silent stretches"
        )

    # Devices: (samples, rng) -> samples of the same length

    def _studio(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return x.copy()

    def _telephone(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from scipy.signal import sosfilt

        band = sosfilt(self._telephone_sos, resample(x, self.sample_rate, TELEPHONE_RATE)).astype(np.float32)
        return fix_length(resample(mu_law(band), TELEPHONE_RATE, self.sample_rate), len(x))

    def _laptop(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from scipy.signal import lfilter, sosfilt

        y = sosfilt(self._laptop_sos, x).astype(np.float32)
        y += rng.standard_normal(len(y), dtype=np.float32) * np.float32(10.0 ** (LAPTOP_HISS_DBFS / 20.0))
        # Soft-knee gain computer (Giannoulis, Massberg & Reiss 2012) on a one-pole RMS envelope; a single time
        # constant instead of attack/release keeps it a vectorised filter rather than a per-sample Python loop.
        alpha = 1.0 - math.exp(-1.0 / (LAPTOP_ENVELOPE_S * self.sample_rate))
        power = lfilter([alpha], [1.0, alpha - 1.0], y * y)
        over = 10.0 * np.log10(np.maximum(power, 1e-12, dtype=np.float32)) - LAPTOP_THRESHOLD_DBFS
        slope = 1.0 / LAPTOP_RATIO - 1.0
        knee = slope * (over + LAPTOP_KNEE_DB / 2.0) ** 2 / (2.0 * LAPTOP_KNEE_DB)
        gain_db = np.where(2 * over < -LAPTOP_KNEE_DB, 0.0, np.where(2 * over > LAPTOP_KNEE_DB, slope * over, knee))
        return (y * 10.0 ** (gain_db / 20.0)).astype(np.float32)

    def _far_field(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from scipy.fft import irfft, next_fast_len, rfft

        room = int(rng.integers(FAR_FIELD_ROOMS))
        size = next_fast_len(len(x) + self._far_field_rooms().shape[1] - 1, real=True)
        spectra = self._room_spectra.get(size)
        if spectra is None:
            if len(self._room_spectra) >= MAX_CACHED_LENGTHS:  # clips of many lengths: keep memory bounded
                self._room_spectra.clear()
            spectra = self._room_spectra[size] = rfft(self._far_field_rooms(), size).astype(np.complex64)
        # The tail past the clip's end is cut, as a fixed recording window would.
        return irfft(rfft(x, size) * spectra[room], size)[: len(x)].astype(np.float32)

    def _far_field_rooms(self) -> np.ndarray:
        """The far_field impulse responses, (FAR_FIELD_ROOMS, taps): each a synthetic room (drawn from the seed)
        followed by the air-absorption low-pass and the distance attenuation, so one convolution applies all three.
        """
        if self._rooms is None:
            from scipy.signal import sosfilt

            rng = np.random.default_rng([self.seed, stable_hash("far_field rooms")])
            rooms = [
                synthetic_rir(self.sample_rate, FAR_FIELD_RT60_S, FAR_FIELD_DRR_DB, rng) for _ in range(FAR_FIELD_ROOMS)
            ]
            gain = 10.0 ** (FAR_FIELD_ATTENUATION_DB / 20.0)
            self._rooms = (sosfilt(self._far_field_sos, np.stack(rooms), axis=1) * gain).astype(np.float32)
        return self._rooms

    def _cheap_mic(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from scipy.signal import sosfilt

        band = sosfilt(self._cheap_mic_sos, x)
        peak = float(np.max(np.abs(band)))
        if peak == 0.0:
            return band.astype(np.float32)
        gain_db = min(CHEAP_MIC_DRIVE_DB - 20.0 * math.log10(peak / CLIP_LEVEL), CHEAP_MIC_MAX_GAIN_DB)
        return np.clip(band * 10.0 ** (gain_db / 20.0), -CLIP_LEVEL, CLIP_LEVEL).astype(np.float32)

    def _lossy_codec(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        delay, _ = _codec_delay(self.sample_rate)
        # The encoder takes full-scale audio; louder floats would wrap or saturate inside it anyway.
        decoded = _codec_round_trip(np.clip(x, -CLIP_LEVEL, CLIP_LEVEL), self.sample_rate)[delay : delay + len(x)]
        # Not fix_length: that centres, and the decoded audio must stay aligned at the start.
        return np.pad(decoded, (0, len(x) - len(decoded)))
