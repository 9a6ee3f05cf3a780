import dataclasses
import random

import numpy as np
import pytest
import soundfile as sf
from audiomentations import BandPassFilter, Gain, Shift

from kwslib.augment import (
    RT60_RANGE_S,
    SILENT_NOISE_RMS_DB,
    Augmenter,
    clip_rng,
    mix_at_snr,
    rms,
    synthetic_rir,
)
from kwslib.config import AugmentConfig

SR = 16_000
# Every stage off: tests switch on the one they measure.
OFF = AugmentConfig(shift_ms=0.0, noise_prob=0.0, gain_db=0.0, reverb_prob=0.0, device_prob=0.0)
ALL_ON = AugmentConfig(noise_prob=1.0, reverb_prob=1.0, device_prob=1.0)


def tone(freq: float, seconds: float = 1.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def impulse(at: int, n: int = SR) -> np.ndarray:
    x = np.zeros(n, dtype=np.float32)
    x[at] = 0.5
    return x


def db(ratio: float) -> float:
    return 20 * np.log10(ratio)


@pytest.fixture(scope="module")
def noises():
    rng = np.random.default_rng(1)
    return [
        (0.1 * rng.standard_normal(3 * SR)).astype(np.float32),
        (0.05 * rng.standard_normal(SR // 3)).astype(np.float32),  # shorter than a clip: gets looped
    ]


@pytest.fixture(scope="module")
def speech():
    """A 1 s clip with a word-like burst in the middle: harmonics under an envelope, silence around it."""
    t = np.arange(SR) / SR
    env = np.exp(-(((t - 0.5) / 0.12) ** 2))
    x = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 360, 540, 1200, 2500), start=1))
    return (0.4 * env * x / np.max(np.abs(x))).astype(np.float32)


def with_(cfg: AugmentConfig, **changes) -> AugmentConfig:
    return dataclasses.replace(cfg, **changes)


# ---------------------------------------------------------------------------------------------------------------
# Determinism and the contract


def test_same_key_same_output_and_new_epoch_new_output(noises, speech):
    aug = Augmenter(ALL_ON, noises)
    first = aug(speech, clip_rng(7, 3, 42))
    np.testing.assert_array_equal(first, aug(speech, clip_rng(7, 3, 42)))
    # A fresh augmenter (e.g. in another data-loader worker, or after a resume) gives the same clip too.
    np.testing.assert_array_equal(first, Augmenter(ALL_ON, noises)(speech, clip_rng(7, 3, 42)))
    assert not np.allclose(first, aug(speech, clip_rng(7, 4, 42)))  # next epoch
    assert not np.allclose(first, aug(speech, clip_rng(7, 3, 43)))  # another clip
    assert not np.allclose(first, aug(speech, clip_rng(8, 3, 42)))  # another run seed


def test_order_of_calls_does_not_matter(noises, speech):
    aug = Augmenter(AugmentConfig(), noises)
    keys = [(0, 1, i) for i in range(6)]
    forward = [aug(speech, clip_rng(*k)) for k in keys]
    backward = [aug(speech, clip_rng(*k)) for k in reversed(keys)][::-1]
    for a, b in zip(forward, backward):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cfg", [AugmentConfig(), ALL_ON], ids=["defaults", "all_on"])
def test_output_is_float32_same_length_finite_and_within_one(noises, speech, cfg):
    aug = Augmenter(cfg, noises)
    loud = np.clip(speech * 2.5, -1, 1)  # peak 1: gain and noise would push it over
    for i in range(40):
        for clip in (speech, loud, np.zeros(SR, np.float32), speech[:777]):
            out = aug(clip, clip_rng(0, 0, i))
            assert out.dtype == np.float32
            assert out.shape == clip.shape
            assert np.isfinite(out).all()
            assert np.max(np.abs(out)) <= 1.0
            assert out is not clip


def test_input_is_not_modified(noises, speech):
    before = speech.copy()
    Augmenter(ALL_ON, noises)(speech, clip_rng(0, 0, 0))
    np.testing.assert_array_equal(speech, before)


def test_float64_input_gives_float32(noises, speech):
    out = Augmenter(ALL_ON, noises)(speech.astype(np.float64), clip_rng(0, 0, 0))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, Augmenter(ALL_ON, noises)(speech, clip_rng(0, 0, 0)), atol=1e-6)


def test_disabled_returns_the_input_unchanged(noises, speech):
    aug = Augmenter(with_(ALL_ON, enabled=False), noises)
    rng = clip_rng(0, 0, 0)
    assert aug(speech, rng) is speech
    assert rng.random() == clip_rng(0, 0, 0).random()  # and draws nothing


def test_disabled_needs_no_noise():
    Augmenter(AugmentConfig(enabled=False), [])


def test_global_rngs_are_neither_used_nor_moved(noises, speech):
    aug = Augmenter(ALL_ON, noises)
    random.seed(1234)
    np.random.seed(1234)
    expected = (random.random(), np.random.random())
    random.seed(1234)
    np.random.seed(1234)
    for i in range(20):
        aug(speech, clip_rng(0, 0, i))
    assert (random.random(), np.random.random()) == expected


def test_audiomentations_randomize_parameters_is_never_called(noises, speech, monkeypatch):
    """Its transforms draw from the global RNGs there; kwslib sets `.parameters` from the clip's rng instead."""

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__}.randomize_parameters uses the global RNG")

    for cls in (Shift, Gain, BandPassFilter):
        monkeypatch.setattr(cls, "randomize_parameters", refuse)
    aug = Augmenter(ALL_ON, noises)
    for i in range(10):
        aug(speech, clip_rng(0, 0, i))


def test_clip_rng_is_keyed_by_seed_epoch_index():
    assert clip_rng(1, 2, 3).random() == clip_rng(1, 2, 3).random()
    draws = {clip_rng(*k).random() for k in [(1, 2, 3), (1, 2, 4), (1, 3, 3), (2, 2, 3), (3, 2, 1)]}
    assert len(draws) == 5
    assert clip_rng(np.int64(1), 2, 3).random() == clip_rng(1, 2, 3).random()


@pytest.mark.parametrize("bad", [(-1, 0, 0), (0, -1, 0), (0, 0, -5), (0.5, 0, 0), (0, "1", 0), (True, 0, 0)])
def test_clip_rng_rejects_bad_keys(bad):
    with pytest.raises(ValueError, match="must be an integer >= 0"):
        clip_rng(*bad)


# ---------------------------------------------------------------------------------------------------------------
# Each stage, measured


def test_shift_moves_an_impulse_by_at_most_shift_ms_and_never_wraps():
    aug = Augmenter(with_(OFF, shift_ms=100.0), [])
    limit = int(0.1 * SR)
    seen = set()
    for at in (SR // 2, 100, SR - 100):  # clear of the 5 ms fade at the clip's original edges
        for i in range(60):
            out = aug(impulse(at), clip_rng(0, 0, i))
            where = np.flatnonzero(out)
            if where.size == 0:  # pushed off an end
                assert at < limit or at >= SR - limit
                continue
            assert where.size == 1 and out[where[0]] == np.float32(0.5)
            moved = int(where[0]) - at
            assert abs(moved) <= limit
            seen.add(moved)
    assert min(seen) < -limit // 2 and max(seen) > limit // 2  # both directions, most of the range


def test_shift_zero_fills_the_vacated_end(speech):
    aug = Augmenter(with_(OFF, shift_ms=100.0), [])
    ones = np.full(SR, 0.5, np.float32)
    for i in range(20):
        out = aug(ones, clip_rng(0, 0, i))
        zeros = int(np.sum(out == 0))
        assert zeros <= int(0.1 * SR)
        if zeros:
            # the zeros are one block at one end
            assert np.all(out[:zeros] == 0) or np.all(out[-zeros:] == 0)


@pytest.mark.parametrize("which", [0, 1], ids=["long_noise", "looped_short_noise"])
def test_noise_is_mixed_at_the_drawn_snr(noises, speech, which):
    aug = Augmenter(with_(OFF, noise_prob=1.0, min_snr_db=10.0, max_snr_db=10.0), [noises[which]])
    for i in range(10):
        out = aug(speech, clip_rng(0, 0, i))
        added = out - speech
        assert db(rms(speech) / rms(added)) == pytest.approx(10.0, abs=0.5)


def test_noise_snr_range_is_used(noises, speech):
    aug = Augmenter(with_(OFF, noise_prob=1.0, min_snr_db=0.0, max_snr_db=20.0), noises)
    snrs = [db(rms(speech) / rms(aug(speech, clip_rng(0, 0, i)) - speech)) for i in range(50)]
    assert 0.0 - 0.01 <= min(snrs) < 5.0 and 15.0 < max(snrs) <= 20.0 + 0.01


@pytest.mark.parametrize("which", [0, 1], ids=["long_noise", "looped_short_noise"])
def test_noise_is_a_scaled_crop_of_a_recording(noises, which):
    from scipy.signal import correlate

    rec = noises[which]
    aug = Augmenter(with_(OFF, noise_prob=1.0), [rec])
    for i in range(3):
        added = aug(np.zeros(SR, np.float32), clip_rng(0, 0, i))  # silent clip: only noise
        looped = np.concatenate([rec] * (SR // len(rec) + 2))
        start = int(np.argmax(correlate(looped, added, mode="valid", method="fft")))
        crop = looped[start : start + SR]
        np.testing.assert_allclose(added, crop * (rms(added) / rms(crop)), rtol=1e-4, atol=1e-7)


def test_noise_on_a_silent_clip_is_added_at_a_low_absolute_level(noises):
    aug = Augmenter(with_(OFF, noise_prob=1.0), noises)
    for i in range(20):
        out = aug(np.zeros(SR, np.float32), clip_rng(0, 0, i))
        assert np.isfinite(out).all()
        level = db(rms(out))
        assert SILENT_NOISE_RMS_DB[0] - 0.1 <= level <= SILENT_NOISE_RMS_DB[1] + 0.1


def test_noise_prob_zero_adds_nothing(noises, speech):
    out = Augmenter(OFF, noises)(speech, clip_rng(0, 0, 0))
    np.testing.assert_array_equal(out, speech)


def test_gain_stays_within_gain_db(speech):
    aug = Augmenter(with_(OFF, gain_db=6.0), [])
    gains = [db(rms(aug(speech, clip_rng(0, 0, i))) / rms(speech)) for i in range(60)]
    assert all(-6.0 - 1e-3 <= g <= 6.0 + 1e-3 for g in gains)
    assert min(gains) < -3.0 and max(gains) > 3.0


def test_default_gain_spans_20_db_each_way(speech):
    assert AugmentConfig().gain_db == 20.0
    aug = Augmenter(with_(OFF, gain_db=AugmentConfig().gain_db), [])
    quiet = speech * np.float32(0.01)  # peak 0.004: +20 dB stays below full scale, so the gain can be measured
    gains = [db(rms(aug(quiet, clip_rng(0, 0, i))) / rms(quiet)) for i in range(100)]
    assert all(-20.0 - 1e-3 <= g <= 20.0 + 1e-3 for g in gains)
    assert min(gains) < -12.0 and max(gains) > 12.0  # well beyond the old +/- 6 dB


def test_loud_output_is_clipped_like_an_adc():
    aug = Augmenter(with_(OFF, gain_db=20.0), [])
    x = tone(440, amp=0.5)
    small = int(np.argmin(np.where(np.abs(x) > 0.05, np.abs(x), np.inf)))  # a sample no gain can clip
    clipped = 0
    for i in range(40):
        out = aug(x, clip_rng(0, 0, i))
        assert np.max(np.abs(out)) <= 1.0
        gain = out[small] / x[small]
        # the input times the drawn gain, cut at full scale: flat tops, not a scaled-down copy
        np.testing.assert_allclose(out, np.clip(x * gain, -1.0, 1.0), atol=1e-5)
        clipped += gain * 0.5 > 1.0
    assert 0 < clipped < 40


def test_device_colouring_cuts_50_hz_and_keeps_1_khz():
    aug = Augmenter(with_(OFF, device_prob=1.0), [])
    low, mid = tone(50), tone(1000)
    steady = slice(SR // 4, None)  # after the filter's start-up transient
    for i in range(30):
        rng_key = (0, 0, i)
        low_db = db(rms(aug(low, clip_rng(*rng_key))[steady]) / rms(low[steady]))
        mid_db = db(rms(aug(mid, clip_rng(*rng_key))[steady]) / rms(mid[steady]))
        assert low_db < -10.0, f"50 Hz only {low_db:.1f} dB down for {rng_key}"
        assert abs(mid_db) < 1.0, f"1 kHz changed by {mid_db:.1f} dB for {rng_key}"


def test_reverb_lengthens_the_decay_of_an_impulse():
    aug = Augmenter(with_(OFF, reverb_prob=1.0), [])
    at = SR // 4
    x = impulse(at)
    for i in range(10):
        out = aug(x, clip_rng(0, 0, i))
        assert np.max(np.abs(out[:at])) < 1e-6  # causal (FFT convolution leaves ~1e-9 round-off)
        assert rms(out) == pytest.approx(rms(x), rel=1e-3)  # level-matched
        tail = out[at + int(0.05 * SR) : at + int(0.15 * SR)]  # 50-150 ms after the impulse
        assert np.sum(tail**2) > 1e-3 * np.sum(out**2)
        assert np.max(np.abs(tail)) > 0


def test_synthetic_rir_decays_60_db_over_rt60():
    rt60 = 0.5
    ir = synthetic_rir(SR, rt60, drr_db=5.0, rng=np.random.default_rng(0)).astype(np.float64)
    assert ir[0] == 1.0 and len(ir) == int(rt60 * SR)
    assert 10 * np.log10(1.0 / np.sum(ir[1:] ** 2)) == pytest.approx(5.0, abs=1e-3)  # direct-to-reverberant
    win = int(0.02 * SR)
    early = np.sum(ir[1 : 1 + win] ** 2)
    late = np.sum(ir[int(0.25 * SR) : int(0.25 * SR) + win] ** 2)
    assert 10 * np.log10(early / late) == pytest.approx(30.0, abs=3.0)  # half of RT60: -30 dB
    assert RT60_RANGE_S[0] > 0


def test_mix_at_snr_is_exact(noises, speech):
    out = mix_at_snr(speech, noises[0][:SR], 3.0)
    assert db(rms(speech) / rms(out - speech)) == pytest.approx(3.0, abs=0.01)
    with pytest.raises(ValueError, match="crop or loop"):
        mix_at_snr(speech, noises[0][:100], 3.0)


# ---------------------------------------------------------------------------------------------------------------
# Loading and bad input


def test_from_folder_loads_the_background_noise(tmp_path, speech):
    folder = tmp_path / "sc" / "_background_noise_"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sf.write(folder / "white_noise.wav", 0.1 * rng.standard_normal(2 * SR), SR)
    sf.write(folder / "quiet.wav", np.zeros(SR), SR)  # skipped: silent
    (folder / "broken.wav").write_bytes(b"not a wav")  # skipped: unreadable
    (folder / "README.md").write_text("not audio")
    aug = Augmenter.from_folder(AugmentConfig(), tmp_path / "sc")
    assert len(aug.noises) == 1 and len(aug.noises[0]) == 2 * SR
    assert aug(speech, clip_rng(0, 0, 0)).shape == speech.shape


def test_from_folder_without_noise_says_how_to_fix(tmp_path):
    with pytest.raises(ValueError, match="no usable _background_noise_/ recordings.*--noise-prob 0"):
        Augmenter.from_folder(AugmentConfig(), tmp_path)
    assert Augmenter.from_folder(with_(OFF, gain_db=3.0), tmp_path).noises == []


@pytest.mark.parametrize(
    ("noises", "message"),
    [
        ([], "noises is empty"),
        (np.zeros(SR, np.float32), "list of 1-D float arrays, got ndarray"),
        ([[0.1, 0.2]], r"noises\[0\] is a list"),
        ([np.zeros((2, SR), np.float32)], r"noises\[0\] has shape \(2, 16000\); it must be 1-D"),
        ([np.ones(SR, np.int16)], r"noises\[0\] has dtype int16"),
        ([np.ones(10, np.float32), np.zeros(0, np.float32)], r"noises\[1\] is empty"),
        ([np.array([0.1, np.nan], np.float32)], r"noises\[0\] holds NaN"),
        ([np.zeros(SR, np.float32)], r"noises\[0\] is silent"),
    ],
)
def test_bad_noises_are_named(noises, message):
    with pytest.raises(ValueError, match=message):
        Augmenter(AugmentConfig(), noises)


def test_bad_configs_are_refused(noises):
    with pytest.raises(ValueError, match="--noise-prob 1.5 must be between"):
        AugmentConfig(noise_prob=1.5)
    cfg = AugmentConfig()
    cfg.min_snr_db = 30.0  # changed after construction: the augmenter checks again
    with pytest.raises(ValueError, match="--min-snr-db 30.0 is above --max-snr-db 20.0"):
        Augmenter(cfg, noises)
    cfg = AugmentConfig()
    cfg.reverb_prob = -0.1
    with pytest.raises(ValueError, match="--reverb-prob -0.1 must be between"):
        Augmenter(cfg, noises)
    with pytest.raises(TypeError, match="cfg must be an AugmentConfig"):
        Augmenter({"noise_prob": 0.5}, noises)


def test_config_is_copied(noises, speech):
    cfg = with_(OFF, gain_db=0.0)
    aug = Augmenter(cfg, noises)
    cfg.gain_db = 20.0
    np.testing.assert_array_equal(aug(speech, clip_rng(0, 0, 0)), speech)


@pytest.mark.parametrize("rate", [0, -16000, 16000.0, True])
def test_bad_sample_rate(rate):
    with pytest.raises(ValueError, match="sample_rate .* must be a positive integer"):
        Augmenter(OFF, [], sample_rate=rate)


def test_device_colouring_needs_a_sample_rate_that_fits_the_band():
    with pytest.raises(ValueError, match="--device-prob 0.1 needs sample_rate >= 8000"):
        Augmenter(with_(OFF, device_prob=0.1), [], sample_rate=4000)
    Augmenter(with_(OFF, device_prob=0.1), [], sample_rate=8000)


def test_bad_samples_and_rng(noises, speech):
    aug = Augmenter(AugmentConfig(), noises)
    for bad in (np.zeros((2, SR), np.float32), np.zeros(SR, np.int16), [0.0, 0.1]):
        with pytest.raises(ValueError, match="samples must be a 1-D float32 array"):
            aug(bad, clip_rng(0, 0, 0))
    with pytest.raises(ValueError, match="NaN or Inf"):
        aug(np.array([0.1, np.inf], np.float32), clip_rng(0, 0, 0))
    with pytest.raises(TypeError, match="rng must be a np.random.Generator"):
        aug(speech, 0)
    assert aug(np.zeros(0, np.float32), clip_rng(0, 0, 0)).size == 0
