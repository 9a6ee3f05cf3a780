import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SR, tone, write_sc_folder
from safetensors.numpy import load_file

from kwslib.config import AugmentConfig, DataConfig, TrainConfig
from kwslib.train import latest_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    words = ["yes", "no", "up", "bed", "cat"]
    speakers = [f"{i:08x}" for i in range(0xB0, 0xBC)]
    return write_sc_folder(tmp_path_factory.mktemp("tiny") / "sc", words, speakers, utterances=2)


def _log(out):
    return [json.loads(line) for line in (Path(out) / "train_log.jsonl").read_text().splitlines()]


def test_compact_trains_and_writes_the_run_folder(tiny_data, tmp_path):
    out = tmp_path / "run"
    result = train(
        DataConfig(source=str(tiny_data)),
        TrainConfig(model="compact", out=str(out), epochs=6, batch_size=16, num_workers=0, checkpoint_every_steps=5),
        AugmentConfig(),
        progress=False,
    )
    steps = [r for r in _log(out) if "loss" in r]
    assert steps[-1]["loss"] < 0.8 * steps[0]["loss"]
    epochs = [r for r in _log(out) if "val_accuracy" in r]
    assert [r["epoch"] for r in epochs] == list(range(6))
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "kws.json"):
        assert (out / "model" / name).exists(), name
    meta = json.loads((out / "model" / "kws.json").read_text())
    assert meta["protocol"] == "sc12" and len(meta["labels"]["labels"]) == 12
    assert meta["train"]["model"] == "compact" and meta["metrics"]["test"]["clips"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == result.metrics
    for split in ("validation", "test"):
        m = metrics[split]
        for key in ("accuracy", "f1_weighted", "f1_macro", "precision_weighted", "recall_macro", "loss"):
            assert 0.0 <= m[key] <= (1.0 if key != "loss" else 100.0), key
    assert metrics["validation"]["accuracy"] == max(r["val_accuracy"] for r in epochs)
    # Checkpoints: only the newest `keep_checkpoints` remain, each complete.
    ckpts = sorted((out / "checkpoints").glob("step-*"))
    assert 1 <= len(ckpts) <= 2 and all((c / "kws_trainer_state.json").exists() for c in ckpts)
    assert not list((out / "checkpoints").glob(".*tmp"))
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        train(DataConfig(source=str(tiny_data)), TrainConfig(out=str(out)), AugmentConfig(), progress=False)


def test_checkpoint_scores_a_wav_through_transformers_pipeline(tiny_data, tmp_path):
    out = tmp_path / "run"
    train(
        DataConfig(source=str(tiny_data)),
        TrainConfig(model="compact", out=str(out), max_steps=4, batch_size=16, num_workers=0),
        AugmentConfig(enabled=False),
        progress=False,
    )
    wav = tmp_path / "clip.wav"
    import soundfile as sf

    sf.write(wav, tone(300, 1.5), SR)
    code = (
        "import json, kwslib\n"
        "from transformers import pipeline\n"
        f"p = pipeline('audio-classification', model={str(out / 'model')!r}, top_k=12)\n"
        # The pipeline decodes file paths with ffmpeg; kwslib decodes the WAV and hands it the samples.
        f"audio = kwslib.load_audio({str(wav)!r})\n"
        "print(json.dumps(p({'raw': audio, 'sampling_rate': 16000})))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {s["label"] for s in scores} == set(json.loads((out / "model" / "kws.json").read_text())["labels"]["labels"])
    assert sum(s["score"] for s in scores) == pytest.approx(1.0, abs=1e-4)


def test_tiny_wav2vec2_trains_end_to_end(tiny_data, tmp_path):
    out = tmp_path / "w2v"
    result = train(
        DataConfig(source=str(tiny_data)),
        TrainConfig(model="wav2vec2-tiny", out=str(out), epochs=2, batch_size=8, num_workers=0, lr=1e-3),
        AugmentConfig(),
        progress=False,
    )
    assert (out / "model" / "model.safetensors").exists()
    assert json.loads((out / "model" / "config.json").read_text())["model_type"] == "wav2vec2"
    assert result.metrics["test"]["clips"] > 0
    losses = [r["loss"] for r in _log(out) if "loss" in r]
    assert losses and np.isfinite(losses).all()


def test_bf16_mixed_precision_runs_on_cpu(tiny_data, tmp_path):
    result = train(
        DataConfig(source=str(tiny_data)),
        TrainConfig(out=str(tmp_path / "bf16"), max_steps=3, batch_size=16, num_workers=0, mixed_precision="bf16"),
        AugmentConfig(enabled=False),
        progress=False,
    )
    assert result.state.global_step == 3
    assert np.isfinite(result.metrics["validation"]["loss"])


def _cli_train(out, data, *extra):
    cmd = [
        sys.executable, "-m", "kwslib.cli", "train", "--data", str(data), "--out", str(out), "--quiet",
        "--max-steps", "60", "--epochs", "100", "--batch-size", "32", "--num-workers", "1",
        "--checkpoint-every-steps", "10", "--early-stopping-patience", "0", "--reverb-prob", "1", "--device-prob", "1", "--seed", "3", *extra,
    ]  # fmt: skip
    return cmd


def test_sigkill_mid_epoch_then_resume_finishes_like_an_uninterrupted_run(tiny_data, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli_train(killed, tiny_data), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while latest_checkpoint(killed) is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed: " + proc.stderr.read().decode()[-500:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = latest_checkpoint(killed)
    assert first is not None and not (killed / "metrics.json").exists()
    resumed_at = json.loads((first / "kws_trainer_state.json").read_text())["global_step"]
    assert 0 < resumed_at < 60

    done = subprocess.run(
        _cli_train(killed, tiny_data, "--resume"), env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming from step-{resumed_at}" in done.stdout
    steps = [r["step"] for r in _log(killed) if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 60  # no step logged twice, none missing at the end

    straight = tmp_path / "straight"
    ok = subprocess.run(_cli_train(straight, tiny_data), env=env, capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stderr[-2000:]
    a = load_file(str(killed / "model" / "model.safetensors"))
    b = load_file(str(straight / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_bad_training_options_are_one_line_errors(tiny_data, tmp_path, capsys):
    from kwslib.cli import main

    assert main(["train", "--data", str(tiny_data), "--out", str(tmp_path / "x"), "--mixed-precision", "fp8"]) == 2
    assert "--mixed-precision fp8 is unknown" in capsys.readouterr().err
    assert main(["train", "--data", str(tiny_data), "--out", str(tmp_path / "x"), "--batch-size", "0"]) == 2
    assert "--batch-size 0 must be at least 1" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_torch_threads_leave_a_core_per_loader_worker():
    import torch

    from kwslib.train import torch_threads

    assert torch_threads(2, cores=2) == 1
    assert torch_threads(1, cores=2) == 1
    assert torch_threads(8, cores=4) == 1
    assert torch_threads(0, cores=2) == min(torch.get_num_threads(), 2)


def test_two_process_distributed_run_on_cpu(tiny_data, tmp_path):
    """The multi-GPU code path (DDP, gather_for_metrics, main-process-only writes) on 2 CPU processes with gloo."""
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun), "--nproc_per_node", "2", "-m", "kwslib.cli", "train", "--data", str(tiny_data), "--out", str(out),
        "--max-steps", "6", "--batch-size", "8", "--num-workers", "0", "--checkpoint-every-steps", "3", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "x 2 process(es)" in proc.stdout
    assert proc.stdout.count("kws train: best epoch") == 1  # only the main process reports
    ckpt = latest_checkpoint(out)
    assert {p.name for p in ckpt.glob("random_states_*.pkl")} == {"random_states_0.pkl", "random_states_1.pkl"}
    metrics = json.loads((out / "metrics.json").read_text())
    from kwslib.config import DataConfig as DC
    from kwslib.data import load_data

    sizes = {k: len(v) for k, v in load_data(DC(source=str(tiny_data))).items()}
    # gather_for_metrics drops the samples DDP repeats to even out the shards: each clip is scored once.
    assert metrics["test"]["clips"] == sizes["test"] and metrics["validation"]["clips"] == sizes["validation"]


def test_context_buffer_centres_clips_and_fills_silence_with_background(tiny_data):
    """Models that see more than a clip train on the clip centred in augmented background; _silence_ crops are
    mirrored out to the whole buffer; validation/test clips are left as they are."""
    from kwslib.augment import Augmenter
    from kwslib.data import load_data
    from kwslib.train import ClipDataset

    dataset = load_data(DataConfig(source=str(tiny_data), protocol="sc12"))
    split = dataset["train"]
    words = split["word"]
    keyword, silence = words.index("yes"), words.index("_silence_")
    off = Augmenter(AugmentConfig(shift_ms=0, noise_prob=0, gain_db=0, reverb_prob=0, device_prob=0), [])
    context = 31_712
    clips = ClipDataset(split, SR, off, seed=0, context_samples=context)
    plain = ClipDataset(split, SR)
    x, label = clips[keyword]
    clip, same_label = plain[keyword]
    assert len(x) == context and label == same_label
    left = context // 2 - SR // 2
    np.testing.assert_array_equal(x[left : left + SR], clip)
    assert not x[:left].any() and not x[left + SR :].any()  # nothing added: augmentation is off
    s, _ = clips[silence]
    crop, _ = plain[silence]
    assert len(s) == context and np.abs(s[:left]).max() > 0 and np.abs(s[left + SR :]).max() > 0
    np.testing.assert_array_equal(s[left : left + SR], crop)
    # With noise on, the background covers the whole buffer around the word.
    noisy = ClipDataset(split, SR, Augmenter(AugmentConfig(noise_prob=1.0), [np.ones(SR, np.float32) * 0.01]),
                        context_samples=context)  # fmt: skip
    y, _ = noisy[keyword]
    assert np.abs(y[:1000]).min() > 0 and np.abs(y[-1000:]).min() > 0
    assert ClipDataset(split, SR, context_samples=context)[keyword][0].shape == (SR,)  # unaugmented: unchanged
