"""kwslib.export: real exports of the trained compact model and a wav2vec2, checked with real onnxruntime sessions."""

import copy
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import tone_of

import kwslib
from kwslib.cli import main
from kwslib.export import (
    ExportError,
    convs_as_matmul,
    export_onnx,
    int8_path_of,
    parity_path_of,
    split_reduce_means,
    validation_data_config,
)
from kwslib.inference import Classifier, OnnxClassifier, TorchClassifier
from kwslib.labels import label_set
from kwslib.models import WaveformClassifier, build_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
torch.set_num_threads(2)
WORDS = ["yes", "no", "up"]


@pytest.fixture(scope="module")
def model_dir(trained_model):
    return trained_model / "model"


@pytest.fixture(scope="module")
def exported(model_dir, tmp_path_factory):
    """fp32 + int8 export of the trained model, checked on its own validation split."""
    source = json.loads((model_dir / "kws.json").read_text())["data"]["source"]
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    result = export_onnx(
        model_dir, out, quantize="int8", validation_data=validation_data_config(model_dir, source), verbose=False
    )
    return result


def tones(seconds: float = 1.0) -> np.ndarray:
    return np.stack([tone_of(w, seconds) for w in WORDS])


def test_fp32_graph_matches_pytorch_on_the_trained_model(model_dir, exported):
    torch_clf, onnx_clf = Classifier.load(model_dir), Classifier.load(exported.onnx_path)
    assert isinstance(torch_clf, TorchClassifier) and isinstance(onnx_clf, OnnxClassifier)
    for seconds in (1.0, 0.5):
        batch = tones(seconds)
        expected, got = torch_clf.logits(batch), onnx_clf.logits(batch)
        assert np.abs(expected - got).max() <= 1e-4, seconds
        assert [torch_clf.labels[i] for i in got.argmax(1)] == WORDS
    assert [onnx_clf.predict(tone_of(w)).label for w in WORDS] == WORDS


def test_fp32_graph_is_as_exact_as_pytorch_on_long_pure_tones(model_dir, exported):
    # A 3 s pure tone is the worst case of this model in float32: most log-mel cells sit on the floor, and PyTorch
    # fp32 itself lands ~1e-4 from the float64 result. The graph must be at least as close to float64 as PyTorch is.
    torch_clf, onnx_clf = Classifier.load(model_dir), Classifier.load(exported.onnx_path)
    batch = tones(3.0)
    exact = copy.deepcopy(torch_clf.module).double()
    with torch.no_grad():
        truth = exact(torch.from_numpy(batch).double())[0].numpy()
    torch_err = np.abs(torch_clf.logits(batch) - truth).max()
    onnx_err = np.abs(onnx_clf.logits(batch) - truth).max()
    assert onnx_err <= torch_err + 1e-5 and onnx_err <= 2e-4
    assert (onnx_clf.logits(batch).argmax(1) == torch_clf.logits(batch).argmax(1)).all()


def test_int8_graph_loads_and_agrees_on_top1(model_dir, exported):
    assert exported.int8_path == int8_path_of(exported.onnx_path) == exported.onnx_path.with_name("model.int8.onnx")
    int8 = Classifier.load(exported.int8_path)
    assert int8.meta["quantization"] == "int8"
    batch = np.concatenate([tones(1.0), tones(0.5)[:, :8000].repeat(2, axis=1)])
    assert (int8.logits(batch).argmax(1) == Classifier.load(model_dir).logits(batch).argmax(1)).all()
    assert [int8.predict(tone_of(w)).label for w in WORDS] == WORDS
    # Only MatMul/Gemm are quantized: in the compact CNN that is the final Linear; its 11 convolutions stay fp32.
    assert exported.parity["int8"]["graph"]["ops"] == {
        "MatMulInteger": 1,
        "DynamicQuantizeLinear": 1,
        "MatMul": 1,  # the mel filterbank (a constant first operand: not a weight)
        "Conv": 11,
    }


@pytest.mark.slow
def test_int8_convs_quantizes_the_convolutions_except_the_stft(model_dir, tmp_path):
    result = export_onnx(model_dir, tmp_path / "m.onnx", quantize="int8", int8_convs=True, verbose=False)
    assert result.parity["int8_convs_as_matmul_fp32"]["passed"]
    assert result.parity["int8"]["graph"]["ops"]["MatMulInteger"] == 11
    assert result.parity["int8"]["graph"]["ops"]["Conv"] == 1  # the STFT over the waveform stays fp32
    assert [Classifier.load(result.int8_path).predict(tone_of(w)).label for w in WORDS] == WORDS


def test_metadata_round_trip(model_dir, exported):
    proto = onnx.load(str(exported.onnx_path))
    raw = {p.key: json.loads(p.value) for p in proto.metadata_props}  # every value is JSON
    meta = Classifier.load(exported.onnx_path).meta
    assert raw == meta
    assert meta["labels"] == ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"] + [
        "_silence_",
        "_unknown_",
    ]
    assert meta["labels"] == Classifier.load(model_dir).labels
    assert (meta["protocol"], meta["sample_rate"], meta["clip_seconds"]) == ("sc12", 16000, 1.0)
    assert (meta["kws_version"], meta["model_type"], meta["quantization"]) == (
        kwslib.__version__,
        "kws-compact",
        "none",
    )
    assert meta["source"] == str(model_dir)
    assert [i.name for i in proto.graph.input] == ["input_values"]
    assert [o.name for o in proto.graph.output] == ["logits", "probabilities"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "samples"]
    assert proto.opset_import[0].version >= 17


def test_parity_json_is_written_beside_the_model(exported):
    path = parity_path_of(exported.onnx_path)
    assert exported.parity_path == path and path.name == "model.onnx.parity.json"
    parity = json.loads(path.read_text())
    assert parity == exported.parity
    fp32 = parity["fp32"]
    assert fp32["passed"] and fp32["max_abs_logit_diff"] <= 1e-4 and fp32["batch1_max_abs_logit_diff"] <= 1e-4
    assert [r["seconds"] for r in fp32["by_length"]] == [1.0, 0.5, 3.0]
    assert "validation split" in parity["clips"]
    int8 = parity["int8"]
    assert int8["checked"] and int8["passed"]
    v = int8["validation"]
    assert v["clips"] >= 5 and v["top1_agreement"] >= 0.99 and v["accuracy_drop_pp"] <= 0.5


def test_a_failed_parity_check_raises_with_the_numbers_and_writes_nothing(model_dir, tmp_path):
    out = tmp_path / "strict.onnx"
    with pytest.raises(ExportError, match=r"differ from PyTorch by up to .* \(tolerance 1e-12; per length 1 s") as info:
        export_onnx(model_dir, out, tolerance=1e-12, verbose=False)
    assert "\n" not in str(info.value)
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))
    assert json.loads(parity_path_of(out).read_text())["fp32"]["passed"] is False


def test_wav2vec2_export_is_correct_at_lengths_other_than_the_traced_one(tmp_path):
    torch.manual_seed(0)
    model, feature_extractor = build_model("wav2vec2-tiny", label_set("sc12"))
    with torch.no_grad():
        model.classifier.weight.mul_(200)  # logits of order 1, so a wrong length would show far above tolerance
    model.save_pretrained(tmp_path / "w2v")
    feature_extractor.save_pretrained(tmp_path / "w2v")
    result = export_onnx(tmp_path / "w2v", tmp_path / "w2v.onnx", verbose=False)
    assert result.parity["fp32"]["passed"] and len(result.parity["fp32"]["by_length"]) == 3

    reference = WaveformClassifier.wrap(model, feature_extractor).eval()
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    outputs = {}
    for samples in (16000, 5920, 40000):  # 1 s (traced), 0.37 s, 2.5 s
        x = (0.1 * rng.standard_normal((3, samples))).astype(np.float32)
        with torch.no_grad():
            expected = reference(torch.from_numpy(x))[0].numpy()
        got, probs = session.run(None, {"input_values": x})
        assert got.shape == (3, 12) and np.abs(got - expected).max() <= 1e-4, samples
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
        outputs[samples] = got
    # Different lengths give different logits (by far more than the tolerance): nothing was baked in.
    assert np.abs(outputs[16000] - outputs[40000]).max() > 1e-2
    assert Classifier.load(result.onnx_path).meta["model_type"] == "wav2vec2"


def test_convs_as_matmul_is_exact(model_dir):
    classifier = Classifier.load(model_dir)
    rewritten, replaced = convs_as_matmul(classifier.module)
    assert replaced == 10  # the stem and 3 blocks x (2 convs + a 1x1 shortcut); not the STFT (1 input channel)
    x = torch.from_numpy(np.concatenate([tones(1.0), tones(1.0)[:, ::-1].copy()]))
    with torch.no_grad():
        np.testing.assert_allclose(rewritten(x)[0].numpy(), classifier.module(x)[0].numpy(), atol=1e-4)
    x = torch.from_numpy(tones(0.73))  # odd length: the unfold's frame count is computed, not traced
    with torch.no_grad():
        np.testing.assert_allclose(rewritten(x)[0].numpy(), classifier.module(x)[0].numpy(), atol=1e-4)


def test_split_reduce_means_keeps_the_result():
    from onnx import TensorProto, helper

    node = helper.make_node("ReduceMean", ["x"], ["y"], axes=[1, 2], keepdims=1)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 40, "t"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    assert split_reduce_means(proto) == 1
    assert [n.op_type for n in proto.graph.node] == ["ReduceMean", "ReduceMean"]
    x = (np.random.default_rng(0).standard_normal((2, 40, 301)) - 10).astype(np.float32)
    (y,) = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(y, x.astype(np.float64).mean(axis=(1, 2), keepdims=True), rtol=1e-6)


def test_kws_export_end_to_end(model_dir, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["export", "--model", str(model_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fp32 vs PyTorch: max |dlogit|" in printed and ": ok" in printed
    assert f"wrote {out}" in printed and f"wrote {parity_path_of(out)}" in printed
    assert Classifier.load(out).predict(tone_of("up")).label == "up"
    assert not int8_path_of(out).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "{tmp}/missing"], "checkpoint folder {tmp}/missing does not exist"),
        (["--model", "{tmp}"], "has no config.json, so it is not a checkpoint"),
        (["--model", "{model}", "--quantize", "int4"], "--quantize int4 is unknown; use int8"),
        (["--model", "{model}", "--out", "{tmp}/model.pt"], "must end in .onnx"),
        (["--model", "{model}", "--opset", "13"], "--opset 13 is too old"),
        (["--model", "{model}/config.json"], "is a file; pass the checkpoint folder"),
    ],
)
def test_kws_export_user_mistakes_are_one_line_errors(args, message, model_dir, tmp_path, capsys):
    fill = {"tmp": str(tmp_path), "model": str(model_dir)}
    argv = ["export", "--out", str(tmp_path / "x.onnx"), *[a.format(**fill) for a in args]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kws: error: ") and "\n" not in err
    assert message.format(**fill) in err
