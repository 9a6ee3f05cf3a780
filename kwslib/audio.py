"""Reading and shaping audio: decode, downmix, resample to 16 kHz, fix the clip length.

Everything in kwslib decodes through here (soundfile + soxr), never through datasets' torchcodec path.
All functions are pure: arrays in, new arrays out.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf

from kwslib.config import SAMPLE_RATE

AudioSource = Union[str, os.PathLike, bytes, bytearray, np.ndarray, dict]

# Integer PCM is scaled by its full range so that int16 32767 maps to just under 1.0, as soundfile does.
_INT_SCALE = {np.dtype(np.int8): 2**7, np.dtype(np.int16): 2**15, np.dtype(np.int32): 2**31}


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, not audio, or containing NaN/Inf."""


def describe(source: AudioSource, name: str | None = None) -> str:
    """A short human name for an audio source, for error messages."""
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, dict):
        if source.get("path"):
            return str(source["path"])
        return "<audio dict>"
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    return f"<{type(source).__name__}>"


def read(source: AudioSource, sample_rate: int | None = None, *, name: str | None = None) -> tuple[np.ndarray, int]:
    """Decode `source` to float32 samples shaped (frames, channels) and its sample rate.

    `source` is a path, file bytes, a datasets audio dict (`{"bytes", "path"}` or `{"array", "sampling_rate"}`)
    or an array; an array needs `sample_rate` (frames first; a 1-D array is mono).
    """
    label = describe(source, name)
    if isinstance(source, dict):
        if source.get("array") is not None:
            return read(np.asarray(source["array"]), source.get("sampling_rate") or sample_rate, name=label)
        if source.get("bytes") is not None:
            return read(source["bytes"], name=label)
        if source.get("path"):
            return read(source["path"], name=label)
        raise AudioError(f"{label}: audio dict has none of 'bytes', 'path' or 'array'")
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise AudioError(f"{label}: an array needs its sample rate (pass sample_rate=...)")
        return _array_to_float(source, label), int(sample_rate)
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise AudioError(f"{label}: empty input (0 bytes)")
        return _decode(io.BytesIO(bytes(source)), label)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise AudioError(f"{label}: no such file")
        if path.is_dir():
            raise AudioError(f"{label}: is a folder, not an audio file")
        if path.stat().st_size == 0:
            raise AudioError(f"{label}: empty file (0 bytes)")
        return _decode(path, label)
    raise AudioError(f"{label}: cannot read audio from a {type(source).__name__}; give a path, bytes or an array")


def _decode(fileobj, label: str) -> tuple[np.ndarray, int]:
    try:
        data, rate = sf.read(fileobj, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, EOFError) as err:
        detail = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise AudioError(f"{label}: not a readable audio file ({detail}); use WAV, FLAC, OGG or MP3") from None
    return data, int(rate)


def _array_to_float(array: np.ndarray, label: str) -> np.ndarray:
    if array.dtype in _INT_SCALE:
        out = array.astype(np.float32) / _INT_SCALE[array.dtype]
    elif array.dtype == np.uint8:  # 8-bit PCM is unsigned, centred on 128
        out = (array.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(array.dtype, np.floating):
        out = array.astype(np.float32)
    else:
        raise AudioError(f"{label}: samples of dtype {array.dtype} are not audio; use float or int PCM")
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2:
        raise AudioError(f"{label}: expected samples shaped (frames,) or (frames, channels), got {array.shape}")
    return out


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of (frames, channels) samples; 1-D input is returned as is."""
    if samples.ndim == 1:
        return samples.astype(np.float32, copy=False)
    return samples.mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, orig_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample mono float32 samples with soxr (high quality)."""
    if orig_rate <= 0 or target_rate <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_rate} -> {target_rate}")
    if orig_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(samples, orig_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def fix_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Centre-crop or zero-pad (evenly on both sides) mono samples to exactly `length`."""
    if length <= 0:
        raise ValueError(f"length {length} must be positive")
    n = len(samples)
    if n == length:
        return samples
    if n > length:
        start = (n - length) // 2
        return samples[start : start + length]
    before = (length - n) // 2
    return np.pad(samples, (before, length - n - before))


def check_finite(samples: np.ndarray, label: str) -> np.ndarray:
    """Raise AudioError for empty samples or samples holding NaN/Inf."""
    if samples.size == 0:
        raise AudioError(f"{label}: no samples (empty audio)")
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise AudioError(f"{label}: {bad} samples are NaN or Inf; fix the source or drop the file")
    return samples


def load_audio(
    source: AudioSource,
    sample_rate: int = SAMPLE_RATE,
    *,
    clip_seconds: float | None = None,
    source_rate: int | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Decode any supported source to mono float32 at `sample_rate`, fixed to `clip_seconds` when given.

    `source_rate` is the rate of an array source (ignored for files, which carry their own).
    """
    label = describe(source, name)
    data, rate = read(source, source_rate, name=label)
    mono = check_finite(to_mono(data), label)
    out = resample(mono, rate, sample_rate)
    if clip_seconds is not None:
        out = fix_length(out, int(round(clip_seconds * sample_rate)))
    return out


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono samples as 16-bit PCM WAV, atomically (a temp file renamed into place)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, np.clip(samples, -1.0, 32767 / 32768), sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def wav_bytes(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Encode mono samples as 16-bit PCM WAV bytes."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(samples, -1.0, 32767 / 32768), sample_rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Log-mel features for display (the compact model computes the same filterbank inside its graph)


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    return np.where(log_region, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), hz)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Triangular mel filters `[n_mels, n_fft // 2 + 1]`, area-normalised (librosa's `norm="slaney"`)."""
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # Area normalisation keeps a band's energy comparable whatever its width.
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def log_mel_spectrogram(
    samples: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    *,
    n_mels: int = 40,
    n_fft: int = 512,
    win_length: int = 400,
    hop_length: int = 160,
    f_min: float = 20.0,
    f_max: float = 7600.0,
) -> np.ndarray:
    """Log-mel power in dB, `[n_mels, 1 + len // hop_length]`: centred Hann frames, the compact model's filterbank."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1 or x.size == 0:
        raise AudioError(f"log_mel_spectrogram needs mono samples [T], got shape {x.shape}")
    padded = np.pad(x, (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    window = np.zeros(n_fft, dtype=np.float32)
    offset = (n_fft - win_length) // 2
    window[offset : offset + win_length] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max) @ power.T
    return (10.0 * np.log10(mel + 1e-10)).astype(np.float32)


def fix_wav_sizes(data: bytes) -> bytes:
    """A browser stream chunk with its RIFF and data sizes set to the bytes actually there.

    Gradio's microphone sends each chunk as the first chunk's 44-byte WAV header plus the new samples, so the
    header's sizes describe the first chunk only and a decoder would read too little (or nothing). Anything that
    is not such a WAV is returned unchanged."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk_id == b"data":
            actual = len(data) - (pos + 8)
            out = bytearray(data)
            struct.pack_into("<I", out, pos + 4, actual)
            struct.pack_into("<I", out, 4, len(data) - 8)
            return bytes(out)
        pos += 8 + size + (size & 1)
    return data
