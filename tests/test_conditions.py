import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from conftest import SR, tone

from kwslib.augment import rms
from kwslib.conditions import (
    CHEAP_MIC_DRIVE_DB,
    CHEAP_MIC_MAX_GAIN_DB,
    DEVICES,
    FAR_FIELD_DRR_DB,
    LAPTOP_HISS_DBFS,
    LEVELS_DB,
    NOISE_TYPES,
    SILENT_REFERENCE_DBFS,
    SNRS_DB,
    Condition,
    Corruptor,
    default_conditions,
    mu_law,
    parse_conditions,
)

SPEAKERS = ("aaaa", "bbbb", "cccc", "dddd")
# One pitch per speaker, a whole number of cycles per second, so each talker shows up in one FFT bin of a 1 s clip.
SPEAKER_HZ = {"aaaa": 300, "bbbb": 700, "cccc": 1100, "dddd": 1900}


def db(ratio: float) -> float:
    return 20 * np.log10(ratio)


def word(freq: float = 440.0) -> np.ndarray:
    """A 1 s word-like clip: a tone under a bell envelope, quiet at both ends."""
    t = np.arange(SR) / SR
    return (np.exp(-(((t - 0.5) / 0.12) ** 2)) * tone(freq)).astype(np.float32)


def pool() -> list[tuple[str, np.ndarray]]:
    """Two clips per speaker at different levels, each speaker on its own pitch."""
    return [(spk, tone(SPEAKER_HZ[spk], amp=0.1 * (n + 1))) for spk in SPEAKERS for n in range(2)]


@pytest.fixture(scope="module")
def corruptor():
    rng = np.random.default_rng(7)
    background = [
        (0.1 * rng.standard_normal(3 * SR)).astype(np.float32),
        (0.05 * rng.standard_normal(SR // 3)).astype(np.float32),  # shorter than a clip: looped
    ]
    return Corruptor(background, pool(), seed=3)


@pytest.fixture(scope="module")
def every_condition(corruptor):
    conditions = default_conditions()
    assert corruptor.available(conditions) == conditions, [corruptor.why_unavailable(c) for c in conditions]
    return conditions


def band_level(samples: np.ndarray, freq: int) -> float:
    """Magnitude (dB) of the FFT bin at `freq` Hz of a 1 s clip."""
    return db(np.abs(np.fft.rfft(samples))[freq] + 1e-12)


# Names, parsing, the Condition record


def test_default_conditions_are_clean_then_noise_type_major_then_devices_then_levels():
    names = [c.name for c in default_conditions(("white", "babble"), (10.0, -5.0), ("telephone",), (-30.0, 20.0))]
    assert names == [
        "clean",
        "white@10dB",
        "white@-5dB",
        "babble@10dB",
        "babble@-5dB",
        "device:telephone",
        "level:-30dB",
        "level:+20dB",
    ]
    full = default_conditions()
    assert len(full) == 1 + len(NOISE_TYPES) * len(SNRS_DB) + len(DEVICES) + len(LEVELS_DB) == 29
    assert {"background@0dB", "pink@20dB", "device:lossy_codec", "device:far_field"} <= {c.name for c in full}
    assert [c.kind for c in full[:2]] == ["clean", "noise"]


def test_default_conditions_name_the_bad_value_and_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown noise type 'brown'; valid: white, pink, babble, background"):
        default_conditions(noise_types=("white", "brown"))
    with pytest.raises(ValueError, match=r"unknown device 'walkie'; valid: studio, telephone, laptop"):
        default_conditions(devices=("walkie",))
    with pytest.raises(TypeError, match=r"noise_types must be a list or tuple, got str 'white'"):
        default_conditions(noise_types="white")
    with pytest.raises(ValueError, match=r"'white@10dB' is listed twice"):
        default_conditions(snrs_db=(10.0, 10))
    with pytest.raises(ValueError, match=r"snr_db nan must be a finite number"):
        default_conditions(snrs_db=(float("nan"),))
    assert [c.name for c in default_conditions((), (), (), ())] == ["clean"]


def test_parse_conditions_all_clean_and_lists():
    assert parse_conditions("all") == default_conditions()
    assert parse_conditions("clean") == [Condition.clean()]
    got = parse_conditions("clean, babble@0dB,device:telephone,level:+20dB,white@-5dB,level:-30dB,pink@2.5dB")
    assert [c.name for c in got] == [
        "clean",
        "babble@0dB",
        "device:telephone",
        "level:+20dB",
        "white@-5dB",
        "level:-30dB",
        "pink@2.5dB",
    ]
    assert got[1] == Condition("babble@0dB", "noise", noise="babble", snr_db=0.0)
    # Other spellings of a number come back under the one canonical name.
    assert [c.name for c in parse_conditions("white@10.0dB,white@-0dB,level:20dB")] == [
        "white@10dB",
        "white@0dB",
        "level:+20dB",
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", r"empty entry"),
        ("clean,", r"empty entry"),
        ("brown@0dB", r"unknown noise type 'brown' in 'brown@0dB'; valid: white, pink, babble, background"),
        ("device:walkie", r"unknown device 'walkie' in 'device:walkie'; valid: studio, telephone"),
        ("loud", r"unknown condition 'loud'; use 'clean', '<noise>@<snr>dB'.*'level:<gain>dB'"),
        ("white@ten dB", r"unknown condition 'white@ten dB'"),
        ("all,clean", r"'all' cannot be combined"),
        ("clean,babble@0dB,clean", r"'clean' is listed twice"),
    ],
)
def test_parse_conditions_errors_say_how_to_fix(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_conditions(spec)


def test_parse_conditions_needs_a_string():
    with pytest.raises(TypeError, match=r"got list"):
        parse_conditions(["clean"])


def test_condition_to_dict_is_json_ready_and_round_trips():
    condition = Condition.for_noise("babble", -5)
    assert condition.to_dict() == {
        "name": "babble@-5dB",
        "kind": "noise",
        "noise": "babble",
        "snr_db": -5.0,
        "device": None,
        "level_db": None,
    }
    stored = json.loads(json.dumps({**condition.to_dict(), "accuracy": 0.5, "clips": 10}))
    assert Condition.from_dict(stored) == condition
    for other in (Condition.clean(), Condition.for_device("laptop"), Condition.for_level(-30)):
        assert Condition.from_name(other.name) == Condition.from_dict(other.to_dict()) == other


def test_condition_name_must_match_its_fields():
    with pytest.raises(ValueError, match=r"name 'loud white' does not match its fields \(expected 'white@10dB'\)"):
        Condition("loud white", "noise", noise="white", snr_db=10.0)
    with pytest.raises(ValueError, match=r"a noise condition needs snr_db; e.g. Condition.for_noise"):
        Condition("white@10dB", "noise", noise="white")
    with pytest.raises(ValueError, match=r"a device condition has no snr_db"):
        Condition("device:laptop", "device", device="laptop", snr_db=3.0)
    with pytest.raises(ValueError, match=r"unknown condition kind 'reverb'; valid: clean, noise, device, level"):
        Condition("reverb", "reverb")
    with pytest.raises(TypeError, match=r"level_db '20' must be a number of dB"):
        Condition.for_level("20")


# Determinism


def test_same_key_gives_byte_identical_audio_across_instances_and_call_orders(corruptor, every_condition):
    clips = [word(440), word(523), word(660)]
    first = {
        (c.name, k): corruptor.apply(clips[k], c, key=k, speaker_id="aaaa") for c in every_condition for k in range(3)
    }
    again = Corruptor(corruptor.background, pool(), seed=3)
    for c in reversed(every_condition):
        for k in (2, 0, 1):
            assert again.apply(clips[k], c, key=k, speaker_id="aaaa").tobytes() == first[(c.name, k)].tobytes(), c.name


@pytest.mark.parametrize("name", ["white@0dB", "pink@0dB", "babble@0dB", "background@0dB", "device:laptop"])
def test_different_key_or_seed_gives_a_different_draw(corruptor, name):
    condition = Condition.from_name(name)
    x = word()
    a = corruptor.apply(x, condition, key=0, speaker_id="aaaa")
    b = corruptor.apply(x, condition, key=1, speaker_id="aaaa")
    c = corruptor.apply(x, condition, key="0.wav", speaker_id="aaaa")
    reseeded = Corruptor(corruptor.background, [(s, tone(SPEAKER_HZ[s])) for s in SPEAKERS], seed=4)
    d = reseeded.apply(x, condition, key=0, speaker_id="aaaa")
    assert not np.array_equal(a, b) and not np.array_equal(a, c) and not np.array_equal(a, d)


def test_far_field_rooms_vary_with_the_key(corruptor):
    outs = {corruptor.apply(word(), Condition.for_device("far_field"), key=k).tobytes() for k in range(8)}
    assert len(outs) > 4  # 32 rooms: eight keys land in more than four of them


def test_string_keys_give_the_same_audio_in_another_process(corruptor):
    code = (
        "import numpy as np; from kwslib.conditions import Corruptor, Condition\n"
        "x = np.linspace(-0.3, 0.3, 1000, dtype=np.float32)\n"
        "y = Corruptor(seed=3).apply(x, Condition.for_noise('pink', 5), key='yes/0a7c2a8d_nohash_0.wav')\n"
        "print(y.tobytes().hex())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # str hash() differs in the child; crc32 does not
    child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    x = np.linspace(-0.3, 0.3, 1000, dtype=np.float32)
    here = Corruptor(seed=3).apply(x, Condition.for_noise("pink", 5), key="yes/0a7c2a8d_nohash_0.wav")
    assert child.stdout.strip() == here.tobytes().hex()


def test_global_random_state_is_never_touched(corruptor, every_condition):
    random.seed(11)
    np.random.seed(11)
    before = (random.getstate(), np.random.get_state()[1].copy())
    for condition in every_condition:
        corruptor.apply(word(), condition, key=5, speaker_id="bbbb")
    assert random.getstate() == before[0]
    np.testing.assert_array_equal(np.random.get_state()[1], before[1])


# Noise


@pytest.mark.parametrize("snr_db", SNRS_DB)
@pytest.mark.parametrize("noise", NOISE_TYPES)
def test_noise_hits_the_requested_snr(corruptor, noise, snr_db):
    clean = word()
    for key in range(3):
        out = corruptor.apply(clean, Condition.for_noise(noise, snr_db), key=key, speaker_id="aaaa")
        assert abs(db(rms(clean) / rms(out - clean)) - snr_db) < 0.5


@pytest.mark.parametrize("noise", NOISE_TYPES)
def test_a_silent_clip_gets_noise_at_a_fixed_level(corruptor, noise):
    for snr_db in (20.0, -5.0):
        out = corruptor.apply(np.zeros(SR, dtype=np.float32), Condition.for_noise(noise, snr_db), key=1)
        assert np.isfinite(out).all()
        assert abs(db(rms(out)) - (SILENT_REFERENCE_DBFS - snr_db)) < 0.01


def test_pink_noise_falls_3_db_per_octave(corruptor):
    silent = np.zeros(4 * SR, dtype=np.float32)
    noise = corruptor.apply(silent, Condition.for_noise("pink", 0), key=0)
    power = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / SR)
    low, high = power[(freqs >= 250) & (freqs < 500)].mean(), power[(freqs >= 2000) & (freqs < 4000)].mean()
    assert abs(10 * np.log10(low / high) - 9.0) < 1.0  # three octaves apart


def test_babble_never_uses_the_clips_own_speaker(corruptor):
    clean = word(5000)
    heard = {spk: 0 for spk in SPEAKERS}
    for key in range(20):
        noise = corruptor.apply(clean, Condition.for_noise("babble", 0), key=key, speaker_id="aaaa") - clean
        levels = {spk: band_level(noise, hz) for spk, hz in SPEAKER_HZ.items()}
        assert levels["aaaa"] < max(levels.values()) - 60, levels
        heard.update({spk: heard[spk] + 1 for spk, level in levels.items() if level > max(levels.values()) - 20})
    assert heard["aaaa"] == 0 and min(heard[s] for s in ("bbbb", "cccc", "dddd")) > 0
    # Without a speaker id every pool clip may talk, including speaker aaaa's.
    unknown = [corruptor.apply(clean, Condition.for_noise("babble", 0), key=k) - clean for k in range(20)]
    assert max(band_level(n, SPEAKER_HZ["aaaa"]) - band_level(n, SPEAKER_HZ["bbbb"]) for n in unknown) > -20


# Devices


def test_telephone_keeps_the_voice_band_and_removes_the_rest(corruptor):
    telephone = Condition.for_device("telephone")
    one_khz = tone(1000)
    assert abs(band_level(corruptor.apply(one_khz, telephone, key=0), 1000) - band_level(one_khz, 1000)) < 1.0
    five_khz = tone(5000)
    assert db(rms(corruptor.apply(five_khz, telephone, key=0)) / rms(five_khz)) < -30
    hum = tone(100)
    assert db(rms(corruptor.apply(hum, telephone, key=0)[SR // 4 :]) / rms(hum)) < -20


def test_mu_law_has_255_levels_and_keeps_zero():
    ramp = np.linspace(-1.2, 1.2, 200_001, dtype=np.float32)
    out = mu_law(ramp)
    assert out.dtype == np.float32
    assert len(np.unique(out)) == 255 <= 256
    assert np.all(np.diff(out) >= 0)  # monotonic
    np.testing.assert_array_equal(mu_law(np.array([0.0, 1.0, -1.0, 2.0, -3.0])), [0.0, 1.0, -1.0, 1.0, -1.0])
    np.testing.assert_array_equal(mu_law(-ramp), -out)
    # Companding: the error grows with the level, so quiet samples keep about the same relative precision.
    quiet, loud = ramp[np.abs(ramp - 0.01) < 0.001], ramp[np.abs(ramp - 0.5) < 0.001]
    assert np.abs(mu_law(quiet) - quiet).max() < 0.0005 < np.abs(mu_law(loud) - loud).max() < 0.02


def test_laptop_cuts_bass_adds_hiss_and_compresses_loud_input(corruptor):
    laptop = Condition.for_device("laptop")
    hiss = corruptor.apply(np.zeros(SR, dtype=np.float32), laptop, key=0)
    assert abs(db(rms(hiss)) - LAPTOP_HISS_DBFS) < 0.5
    bass, mid = tone(60, amp=0.01), tone(1000, amp=0.01)
    assert db(rms(corruptor.apply(bass, laptop, 0)[SR // 4 :]) / rms(bass)) < -10
    assert abs(db(rms(corruptor.apply(mid, laptop, 0)[SR // 4 :]) / rms(mid))) < 0.5
    loud = tone(1000, amp=0.01 * 10 ** (30 / 20))  # 30 dB above `mid`, 14 dB above the compressor threshold
    assert db(rms(corruptor.apply(loud, laptop, 0)[SR // 4 :]) / rms(mid)) < 25  # 3:1 above the threshold


def test_far_field_is_causal_reverberant_attenuated_and_dull(corruptor):
    far = Condition.for_device("far_field")
    impulse = np.zeros(SR, dtype=np.float32)
    impulse[1000] = 0.5
    out = corruptor.apply(impulse, far, key=0)
    assert np.abs(out[:1000]).max() < 1e-6
    direct, tail = np.sum(out[1000:1016] ** 2), np.sum(out[1016:] ** 2)
    assert abs(10 * np.log10(tail / direct) + FAR_FIELD_DRR_DB) < 2.0  # more room than talker
    assert rms(corruptor.apply(word(), far, key=0)) < rms(word()) / 2
    noise = (0.1 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)
    gain = np.abs(np.fft.rfft(corruptor.apply(noise, far, key=0))) ** 2 / np.abs(np.fft.rfft(noise)) ** 2
    assert 10 * np.log10(gain[6500:7500].mean() / gain[500:1500].mean()) < -4  # air absorption: dull highs


def test_cheap_mic_clips_a_level_independent_fraction(corruptor):
    cheap = Condition.for_device("cheap_mic")
    out = corruptor.apply(tone(1000), cheap, key=0)
    assert np.abs(out).max() == 1.0
    # Peak driven 6 dB over full scale: a sine spends 1 - 2/pi*asin(10**(-6/20)) ~ 2/3 of its time above the clip.
    expected = 1 - 2 / np.pi * np.arcsin(10 ** (-CHEAP_MIC_DRIVE_DB / 20))
    assert abs(np.mean(np.abs(out) == 1.0) - expected) < 0.06
    np.testing.assert_allclose(corruptor.apply(tone(1000, amp=0.1), cheap, key=0), out, atol=1e-5)
    # A near-silent clip gets at most CHEAP_MIC_MAX_GAIN_DB, not blown up to full scale.
    quiet = corruptor.apply(tone(1000, amp=1e-4), cheap, key=0)
    assert np.abs(quiet).max() < 1e-4 * 10 ** (CHEAP_MIC_MAX_GAIN_DB / 20) * 1.2


def test_lossy_codec_changes_the_signal_but_keeps_length_and_alignment(corruptor):
    lossy = Condition.for_device("lossy_codec")
    clean = word(440) + word(1330) / 2 + word(7000) / 4
    out = corruptor.apply(clean, lossy, key=0)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert np.abs(out - clean).max() > 0.01
    assert np.corrcoef(out, clean)[0, 1] > 0.9  # aligned: the decoder delay is removed
    assert band_level(out, 7000) < band_level(clean, 7000) - 20  # a 16 kbit/s MP3 keeps nothing up there
    odd = clean[:12_345]
    assert corruptor.apply(odd, lossy, key=0).shape == odd.shape


def test_studio_and_clean_are_unchanged_copies(corruptor):
    x = word()
    for condition in (Condition.clean(), Condition.for_device("studio")):
        out = corruptor.apply(x, condition, key=0)
        np.testing.assert_array_equal(out, x)
        assert out is not x


# Levels


def test_levels_scale_then_clip(corruptor):
    x = np.array([0.5, -0.01, 0.02, -0.2, 0.0], dtype=np.float32)
    np.testing.assert_allclose(
        corruptor.apply(x, Condition.for_level(20), key=0), [1.0, -0.1, 0.2, -1.0, 0.0], rtol=1e-6
    )
    np.testing.assert_allclose(corruptor.apply(x, Condition.for_level(-30), key=0), x * 10**-1.5, rtol=1e-6)


# Availability and bad input


def test_available_drops_what_it_cannot_make_and_says_why():
    bare = Corruptor()
    conditions = default_conditions()
    kept = bare.available(conditions)
    assert {c.noise for c in kept if c.kind == "noise"} == {"white", "pink"}
    assert len(kept) == len(conditions) - 2 * len(SNRS_DB)
    assert "background" in bare.why_unavailable(Condition.for_noise("background", 0))
    assert "at least 3" in bare.why_unavailable(Condition.for_noise("babble", 0))
    with pytest.raises(ValueError, match=r"cannot apply 'background@0dB': no background recordings.*available\(\)"):
        bare.apply(word(), Condition.for_noise("background", 0), key=0)
    silence = np.zeros(SR, dtype=np.float32)
    small = Corruptor(babble_pool=[("a", word()), ("b", word()), ("", silence), ("c", silence)])
    assert small.why_unavailable(Condition.for_noise("babble", 0)) is not None  # 2 usable clips
    one_voice = Corruptor(babble_pool=[("a", word(f)) for f in (300, 400, 500)])
    assert "one speaker" in one_voice.why_unavailable(Condition.for_noise("babble", 0))


def test_every_condition_gives_finite_float32_of_the_same_length(corruptor, every_condition):
    clips = {
        "zeros": np.zeros(SR, dtype=np.float32),
        "float64 word": word().astype(np.float64),
        "short": np.array([0.1, -0.2, 0.3], dtype=np.float32),
    }
    for name, clip in clips.items():
        for condition in every_condition:
            out = corruptor.apply(clip, condition, key=name, speaker_id="cccc")
            assert out.dtype == np.float32 and out.shape == clip.shape, (name, condition.name)
            assert np.isfinite(out).all(), (name, condition.name)


@pytest.mark.parametrize(
    ("samples", "error", "message"),
    [
        (np.zeros(SR, dtype=np.int16), TypeError, r"dtype int16; pass float samples"),
        (np.zeros((2, SR), dtype=np.float32), ValueError, r"shape \(2, 16000\); pass mono"),
        (np.array([0.1, np.nan], dtype=np.float32), ValueError, r"1 NaN or Inf"),
        (np.zeros(0, dtype=np.float32), ValueError, r"empty"),
        ([0.1, 0.2], TypeError, r"numpy float array, got list"),
    ],
)
def test_bad_samples_are_refused(corruptor, samples, error, message):
    with pytest.raises(error, match=message):
        corruptor.apply(samples, Condition.clean(), key=0)


def test_bad_arguments_are_refused(corruptor):
    with pytest.raises(TypeError, match=r"must be a Condition, got str.*parse_conditions"):
        corruptor.apply(word(), "white@10dB", key=0)
    with pytest.raises(TypeError, match=r"key 1.5 must be an int"):
        corruptor.apply(word(), Condition.clean(), key=1.5)
    with pytest.raises(ValueError, match=r"seed -1 must be an integer >= 0"):
        Corruptor(seed=-1)
    with pytest.raises(ValueError, match=r"sample_rate 8000 is below 16000"):
        Corruptor(sample_rate=8000)
    with pytest.raises(ValueError, match=r"background\[1\] is silent"):
        Corruptor(background=[word(), np.zeros(100, dtype=np.float32)])
    with pytest.raises(TypeError, match=r"wrap one recording: \[noise\]"):
        Corruptor(background=word())
    with pytest.raises(TypeError, match=r"babble_pool\[0\] must be a \(speaker_id, clip\) pair"):
        Corruptor(babble_pool=[word()])
