import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, tone
from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

from kwslib.labels import label_set
from kwslib.models import BUILTIN_MODELS, ModelSourceError, build_model, load_model
from kwslib.models.compact import (
    CompactConfig,
    CompactFeatureExtractor,
    CompactForAudioClassification,
    register,
)

torch.set_num_threads(2)
SC12 = label_set("sc12")


@pytest.fixture
def compact():
    torch.manual_seed(0)
    model, feature_extractor = build_model("compact", SC12)
    return model.eval(), feature_extractor


def noisy_tone(freq: float, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return tone(freq, seconds) + (0.01 * rng.standard_normal(int(seconds * SR))).astype(np.float32)


@pytest.mark.parametrize(("protocol", "classes"), [("sc12", 12), ("sc35", 36)])
def test_compact_fits_the_edge_budget(protocol, classes):
    model, _ = build_model("compact", label_set(protocol))
    assert model.config.num_labels == classes
    assert model.num_parameters() <= 100_000


def test_bc_resnet_architecture_option():
    from kwslib.models.compact import CompactConfig, CompactForAudioClassification

    model = CompactForAudioClassification(CompactConfig(architecture="bc-resnet", num_labels=12)).eval()
    assert model.num_parameters() <= 100_000
    with torch.no_grad():
        assert model(torch.randn(2, SR) * 0.1).logits.shape == (2, 12)
    with pytest.raises(ValueError, match="architecture 'resnet' is unknown; use one of tc-resnet, bc-resnet"):
        CompactConfig(architecture="resnet")


@pytest.mark.parametrize("seconds", [0.1, 0.5, 1.0, 3.0])
def test_compact_takes_any_length(compact, seconds):
    model, _ = compact
    with torch.no_grad():
        logits = model(torch.randn(2, int(seconds * SR)) * 0.1).logits
    assert logits.shape == (2, 12)
    assert torch.isfinite(logits).all()


def test_spec_augment_only_while_training():
    torch.manual_seed(0)
    x = torch.from_numpy(noisy_tone(1000))[None]
    model, _ = build_model("compact", SC12, spec_augment=True)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x).logits, model(x).logits)
        model.train()
        assert not torch.equal(model.features(x), model.features(x))
    model, _ = build_model("compact", SC12, spec_augment=False)
    model.train()
    with torch.no_grad():
        assert torch.equal(model.features(x), model.features(x))


def test_log_mel_matches_librosa(compact):
    librosa = pytest.importorskip("librosa")
    model, _ = compact
    c = model.config
    y = noisy_tone(440, 0.77)
    ref = librosa.feature.melspectrogram(
        y=y.astype(np.float64), sr=SR, n_fft=c.n_fft, win_length=c.win_length, hop_length=c.hop_length,
        window="hann", center=True, pad_mode="constant", power=2.0, n_mels=c.n_mels, fmin=c.f_min, fmax=c.f_max,
    )  # fmt: skip
    got = model.frontend(torch.from_numpy(y)[None])[0].numpy()
    assert got.shape == ref.shape == (40, 1 + len(y) // 160)
    # float32 DFT by convolution vs float64 FFT: a 400-tap float32 dot product is accurate to ~1e-6 of the frame's
    # strongest bin, i.e. ~1e-4 in log power for bins 40 dB below it (measured worst here: ~2e-5). 1e-3 in natural
    # log units is 0.004 dB: far below anything a classifier notices, far above float32 noise.
    np.testing.assert_allclose(got, np.log(ref + c.log_offset), atol=1e-3)


def test_features_ignore_input_level(compact):
    model, _ = compact
    x = torch.from_numpy(noisy_tone(1000))[None]
    with torch.no_grad():
        reference = model.features(x)
        for gain in (1e-3, 1e-2, 10.0):  # -60, -40 and +20 dB
            torch.testing.assert_close(model.features(x * gain), reference, atol=1e-4, rtol=0)
        assert torch.isfinite(model(torch.zeros(1, SR)).logits).all()  # digital silence


@pytest.mark.parametrize(("name", "lr"), [("compact", 3e-3), ("wav2vec2-tiny", 3e-3)])
def test_a_few_steps_lower_the_loss(name, lr):
    torch.manual_seed(0)
    labels = label_set("custom", ["a", "b", "c"])  # + _silence_ + _unknown_: five classes, one tone each
    model, feature_extractor = build_model(name, labels)
    clips = [noisy_tone(250 * 2**k, seed=10 * k + i) * (0.5 + i) for k in range(len(labels)) for i in range(2)]
    batch = feature_extractor(clips, sampling_rate=SR, return_tensors="pt")
    targets = torch.arange(len(labels)).repeat_interleave(2)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    losses = []
    for _ in range(30):
        loss = model(**batch, labels=targets).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    # Training-mode loss (batch statistics): after 30 fast-moving steps BatchNorm's running averages still lag the
    # weights, so an eval-mode loss would measure that lag rather than what the optimiser achieved.
    with torch.no_grad():
        final = model(**batch, labels=targets).loss.item()
    assert final < 0.7 * losses[0], losses


def test_feature_extractor_pads_and_checks_rate(tmp_path):
    fe = CompactFeatureExtractor()
    out = fe(np.ones(8000, np.float32), sampling_rate=SR, return_tensors="np")
    assert out["input_values"].shape == (1, SR)
    np.testing.assert_array_equal(out["input_values"][0, 8000:], 0.0)
    out = fe([np.ones(100), np.ones(20000)], sampling_rate=SR, return_tensors="pt")
    assert out["input_values"].shape == (2, 20000) and out["input_values"].dtype == torch.float32
    assert list(out) == ["input_values"]
    with pytest.raises(ValueError, match="8000 Hz"):
        fe(np.ones(8000), sampling_rate=8000)
    with pytest.raises(ValueError, match="mono"):
        fe([np.ones((100, 2))], sampling_rate=SR)
    fe.save_pretrained(tmp_path)
    loaded = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert type(loaded) is CompactFeatureExtractor and loaded.clip_samples == SR


def test_register_is_idempotent():
    register()
    register()
    config = AutoConfig.for_model("kws-compact", id2label=SC12.id2label)
    assert type(AutoModelForAudioClassification.from_config(config)) is CompactForAudioClassification


def test_config_names_bad_values():
    with pytest.raises(ValueError, match="sub_bands 5 does not divide"):
        CompactConfig(n_mels=64)
    with pytest.raises(ValueError, match="f_max 9000"):
        CompactConfig(f_max=9000.0)


@pytest.mark.slow
def test_pipeline_loads_checkpoint_in_fresh_process(tmp_path, compact):
    model, feature_extractor = compact
    model.save_pretrained(tmp_path / "model")
    feature_extractor.save_pretrained(tmp_path / "model")
    wav = tmp_path / "clip.wav"
    sf.write(wav, noisy_tone(800, 0.8), SR)
    # Without ffmpeg the pipeline cannot decode a path itself; it then gets the samples kwslib decoded.
    script = (
        "import json, shutil, sys, kwslib\n"
        "from transformers import pipeline\n"
        "p = pipeline('audio-classification', model=sys.argv[1], top_k=None)\n"
        "src = sys.argv[2]\n"
        "if not shutil.which('ffmpeg'):\n"
        "    src = {'raw': kwslib.load_audio(src), 'sampling_rate': 16000}\n"
        "print(json.dumps(p(src)))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "model"), str(wav)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {r["label"] for r in result} == set(SC12.labels)
    assert sum(r["score"] for r in result) == pytest.approx(1.0, abs=1e-4)


def test_unreachable_hub_model_is_one_clear_line():
    with pytest.raises(ModelSourceError) as err:
        build_model("facebook/wav2vec2-base", SC12)
    message = str(err.value)
    assert "\n" not in message
    assert "facebook/wav2vec2-base" in message and "--model compact" in message


@pytest.mark.parametrize("name", ["./no/such/checkpoint", "runs/nothing/here/model"])
def test_missing_local_folder(name):
    with pytest.raises(ModelSourceError, match="no such folder") as err:
        build_model(name, SC12)
    assert "\n" not in str(err.value)


def test_unknown_name_lists_builtins():
    with pytest.raises(ModelSourceError) as err:
        build_model("compakt", SC12)
    assert all(name in str(err.value) for name in BUILTIN_MODELS)


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelSourceError, match="config.json"):
        build_model(str(tmp_path), SC12)
    with pytest.raises(ModelSourceError, match="config.json"):
        load_model(tmp_path)


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_feature_encoder(freeze):
    model, feature_extractor = build_model("wav2vec2-tiny", SC12, freeze_feature_encoder=freeze, dropout=0.2)
    encoder = list(model.wav2vec2.feature_extractor.parameters())
    assert encoder and all(p.requires_grad is not freeze for p in encoder)
    assert all(p.requires_grad for p in model.classifier.parameters())
    assert model.config.hidden_dropout == 0.2 and model.config.id2label == SC12.id2label
    assert feature_extractor.do_normalize and feature_extractor.sampling_rate == SR


def test_local_checkpoint_gets_a_new_head(tmp_path, compact):
    model, feature_extractor = compact
    model.save_pretrained(tmp_path)
    feature_extractor.save_pretrained(tmp_path)
    sc35 = label_set("sc35")
    tuned, _ = build_model(str(tmp_path), sc35)
    assert tuned.config.id2label == sc35.id2label
    torch.testing.assert_close(tuned.body[1].weight, model.body[1].weight)
    scratch, _ = build_model(str(tmp_path), sc35, from_scratch=True)
    assert not torch.equal(scratch.body[1].weight, model.body[1].weight)


def test_load_model_round_trip(tmp_path, compact):
    model, feature_extractor = compact
    model.save_pretrained(tmp_path)
    feature_extractor.save_pretrained(tmp_path)
    meta = {"labels": SC12.to_dict(), "protocol": "sc12", "metrics": {"accuracy": 0.5}}
    (tmp_path / "kws.json").write_text(json.dumps(meta))
    loaded, loaded_fe, loaded_meta = load_model(tmp_path)
    assert not loaded.training and loaded_meta == meta
    batch = loaded_fe([noisy_tone(500, 0.6), noisy_tone(900, 1.2)], sampling_rate=SR, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, atol=0, rtol=0)
    (tmp_path / "kws.json").unlink()
    assert load_model(tmp_path)[2] == {}


# The legacy exporter is the one export.py uses (opset 17, dynamo=False); its deprecation and constant-folding notices
# are about the exporter, not the model.
@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")
@pytest.mark.filterwarnings("ignore:Constant folding")
@pytest.mark.filterwarnings("ignore:The feature will be removed")
def test_onnx_export_matches_torch(tmp_path, compact):
    import onnxruntime as ort  # a dev dependency (kwslib[export]): a missing one must fail, not skip

    model, _ = compact
    with torch.no_grad():
        model.classifier.weight.normal_(std=1.0)  # an untrained head's logits are too small to compare
    path = tmp_path / "compact.onnx"
    torch.onnx.export(
        model, (torch.randn(1, SR) * 0.1,), str(path), input_names=["input_values"], output_names=["logits"],
        dynamic_axes={"input_values": {0: "batch", 1: "samples"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, SR), (3, 8000), (2, 3 * SR)]:
        x = (np.random.default_rng(0).standard_normal(shape) * 0.1).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).logits.numpy()
        np.testing.assert_allclose(session.run(None, {"input_values": x})[0], expected, atol=1e-4, rtol=0)
