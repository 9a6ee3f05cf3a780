import io

import numpy as np
import pytest
import soundfile as sf

from kwslib.audio import AudioError, fix_length, load_audio, read, resample, to_mono, wav_bytes

SR = 16_000
RAMP16 = np.array([0, 1, -1, 16384, -16384, 32767, -32768], dtype=np.int16)


@pytest.mark.parametrize(
    ("subtype", "tol"),
    [("PCM_U8", 1 / 128), ("PCM_16", 0.0), ("PCM_24", 0.0), ("PCM_32", 0.0), ("FLOAT", 0.0), ("DOUBLE", 0.0)],
)
def test_wav_bit_depths_decode_to_float(tmp_path, subtype, tol):
    expected = RAMP16.astype(np.float32) / 32768
    path = tmp_path / f"x_{subtype}.wav"
    sf.write(path, expected, SR, subtype=subtype)
    got = load_audio(path)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=tol)


def test_flac_is_lossless(tmp_path):
    path = tmp_path / "x.flac"
    sf.write(path, RAMP16, SR, subtype="PCM_16")
    np.testing.assert_array_equal(load_audio(path), RAMP16 / np.float32(32768))


@pytest.mark.parametrize(
    ("fmt", "subtype", "suffix"), [("OGG", "VORBIS", "ogg"), ("OGG", "OPUS", "opus"), ("MP3", "MPEG_LAYER_III", "mp3")]
)
def test_lossy_formats_keep_the_signal(tmp_path, fmt, subtype, suffix):
    t = np.arange(SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = tmp_path / f"x.{suffix}"
    rate = 48_000 if subtype == "OPUS" else SR
    sf.write(path, resample(x, SR, rate), rate, format=fmt, subtype=subtype)
    got = load_audio(path, clip_seconds=1.0)
    assert got.shape == (SR,)
    # Codecs add delay; compare spectra: the 440 Hz peak survives.
    spectrum = np.abs(np.fft.rfft(got))
    assert abs(np.argmax(spectrum) - 440) <= 1


def test_stereo_is_averaged_exactly():
    stereo = np.array([[0.5, -0.25], [1.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(to_mono(stereo), [0.125, 0.5, 0.0])
    np.testing.assert_array_equal(load_audio(stereo, source_rate=SR), [0.125, 0.5, 0.0])


def test_resample_keeps_length_ratio_and_pitch():
    t = np.arange(8000) / 8000
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    y = load_audio(x, source_rate=8000)
    assert y.shape == (16000,)
    assert np.argmax(np.abs(np.fft.rfft(y))) == 1000
    x44 = np.sin(2 * np.pi * 440 * np.arange(44100) / 44100).astype(np.float32)
    assert load_audio(x44, source_rate=44100).shape == (16000,)


def test_fix_length_centre_crops_and_pads_evenly():
    x = np.array([1, 2, 3, 4, 5], dtype=np.float32)
    np.testing.assert_array_equal(fix_length(x, 3), [2, 3, 4])
    np.testing.assert_array_equal(fix_length(x, 8), [0, 1, 2, 3, 4, 5, 0, 0])
    np.testing.assert_array_equal(fix_length(x, 5), x)
    assert load_audio(np.ones(20000, np.float32), source_rate=SR, clip_seconds=1.0).shape == (16000,)
    assert load_audio(np.ones(100, np.float32), source_rate=SR, clip_seconds=0.5).shape == (8000,)


def test_sources_bytes_dict_and_int_arrays_agree(tmp_path):
    data = wav_bytes(RAMP16 / np.float32(32768))
    from_bytes = load_audio(data)
    np.testing.assert_array_equal(from_bytes, RAMP16 / np.float32(32768))
    np.testing.assert_array_equal(load_audio({"bytes": data, "path": "a.wav"}), from_bytes)
    np.testing.assert_array_equal(load_audio(RAMP16, source_rate=SR), from_bytes)
    np.testing.assert_array_equal(load_audio({"array": RAMP16, "sampling_rate": SR}), from_bytes)
    np.testing.assert_array_equal(load_audio(np.array([0, 128, 255], np.uint8), source_rate=SR), [-1.0, 0.0, 127 / 128])
    path = tmp_path / "a.wav"
    path.write_bytes(data)
    np.testing.assert_array_equal(load_audio({"bytes": None, "path": str(path)}), from_bytes)
    samples, rate = read(io.BytesIO(data).getvalue())
    assert samples.shape == (7, 1) and rate == SR


def test_bad_inputs_raise_audio_error_naming_the_file(tmp_path):
    nan = np.array([0.0, np.nan, 0.1], np.float32)
    with pytest.raises(AudioError, match="1 samples are NaN or Inf"):
        load_audio(nan, source_rate=SR)
    with pytest.raises(AudioError, match="NaN or Inf"):
        load_audio(np.array([np.inf], np.float32), source_rate=SR, name="clip.wav")
    with pytest.raises(AudioError, match="empty input"):
        load_audio(b"")
    with pytest.raises(AudioError, match="no samples"):
        load_audio(np.zeros(0, np.float32), source_rate=SR)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty file"):
        load_audio(empty)
    with pytest.raises(AudioError, match=r"missing\.wav: no such file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="is a folder"):
        load_audio(tmp_path)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all, just text " * 10)
    with pytest.raises(AudioError, match=r"notes\.wav: not a readable audio file"):
        load_audio(text)
    truncated = tmp_path / "cut.wav"
    truncated.write_bytes(wav_bytes(np.zeros(100, np.float32))[:30])
    with pytest.raises(AudioError, match=r"cut\.wav"):
        load_audio(truncated)
    with pytest.raises(AudioError, match="needs its sample rate"):
        load_audio(np.zeros(10, np.float32))
    with pytest.raises(AudioError, match="shaped"):
        load_audio(np.zeros((2, 2, 2), np.float32), source_rate=SR)
    with pytest.raises(AudioError, match="dtype complex64 are not audio"):
        load_audio(np.zeros(4, np.complex64), source_rate=SR)
    with pytest.raises(AudioError, match="none of 'bytes', 'path' or 'array'"):
        load_audio({"path": None, "bytes": None})
    with pytest.raises(AudioError, match="cannot read audio from a int"):
        load_audio(5)
    assert issubclass(AudioError, ValueError)


def test_log_mel_spectrogram_shape_and_peak_band():
    from kwslib.audio import log_mel_spectrogram, mel_filterbank

    spec = log_mel_spectrogram((0.3 * np.sin(2 * np.pi * 1000.0 * np.arange(SR) / SR)).astype(np.float32))
    assert spec.shape == (40, 1 + SR // 160) and spec.dtype == np.float32
    # the loudest band of a 1 kHz tone is the mel filter that peaks nearest 1 kHz
    fb = mel_filterbank(SR, 512, 40, 20.0, 7600.0)
    assert abs(int(spec[:, 50].argmax()) - int(fb[:, round(1000 / (SR / 512))].argmax())) <= 1
    with pytest.raises(AudioError, match="mono"):
        log_mel_spectrogram(np.zeros((2, 100), np.float32))
