"""Shared fixtures. No network: the hub is offline and Gradio sends no analytics."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

SR = 16_000


def tone(freq: float, seconds: float = 1.0, amp: float = 0.3, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_sc_folder(root, words, speakers, *, lists=True, noise_seconds=20.0, utterances=1):
    """A tiny Speech Commands folder of tones: <word>/<speaker>_nohash_<n>.wav, noise, and optional lists."""
    root.mkdir(parents=True, exist_ok=True)
    for wi, word in enumerate(words):
        (root / word).mkdir(exist_ok=True)
        for si, spk in enumerate(speakers):
            for n in range(utterances):
                sf.write(root / word / f"{spk}_nohash_{n}.wav", tone(200 + 50 * wi + si), SR, subtype="PCM_16")
    if noise_seconds:
        (root / "_background_noise_").mkdir(exist_ok=True)
        rng = np.random.default_rng(0)
        for name in ("white_noise", "pink_noise"):
            sf.write(
                root / "_background_noise_" / f"{name}.wav", 0.1 * rng.standard_normal(int(noise_seconds * SR)), SR
            )
    if lists:
        # speakers[0] -> validation, speakers[1] -> test, the rest train
        (root / "validation_list.txt").write_text("".join(f"{w}/{speakers[0]}_nohash_0.wav\n" for w in words))
        (root / "testing_list.txt").write_text("".join(f"{w}/{speakers[1]}_nohash_0.wav\n" for w in words))
    return root


@pytest.fixture
def sc_folder(tmp_path):
    words = ["yes", "no", "up", "bed", "cat"]
    speakers = [f"{i:08x}" for i in range(0xA0, 0xAA)]
    return write_sc_folder(tmp_path / "sc", words, speakers)


TONE_WORDS = ["yes", "no", "up", "bed", "cat"]


def tone_of(word: str, seconds: float = 1.0, amp: float = 0.3) -> np.ndarray:
    """The tone `write_sc_folder` uses for `word`'s first speaker: what the `trained_model` learned `word` sounds like."""
    return tone(200 + 50 * TONE_WORDS.index(word), seconds, amp)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory):
    """A compact sc12 checkpoint trained on tones (one frequency per word), for tests that need right answers.

    Labels: yes, no, up, _silence_, _unknown_ (bed, cat). Returns the run folder; the checkpoint is `<run>/model`.
    """
    from kwslib.config import AugmentConfig, DataConfig, TrainConfig
    from kwslib.train import train

    root = tmp_path_factory.mktemp("trained")
    speakers = [f"{i:08x}" for i in range(0xC0, 0xCC)]
    data = write_sc_folder(root / "sc", TONE_WORDS, speakers, utterances=2)
    out = root / "run"
    train(
        DataConfig(source=str(data)),
        TrainConfig(model="compact", out=str(out), epochs=8, batch_size=16, num_workers=0, lr=1e-2),
        AugmentConfig(enabled=False),
        progress=False,
    )
    return out
