"""kwslib.sagemaker: the serving handler on real audio and bad payloads, model.tar.gz loaded the way the inference
container loads it (in a fresh interpreter that cannot see the repo), the training entry point run end to end
(including a resume after a simulated spot interruption), and the launch functions making real SageMaker SDK v2
calls against moto's `mock_aws` (no AWS account: fake credentials, us-east-1)."""

import base64
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import types

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, TONE_WORDS, tone, tone_of, write_sc_folder

from kwslib.audio import wav_bytes
from kwslib.cli import main
from kwslib.config import (
    SageMakerBatchConfig,
    SageMakerConfig,
    SageMakerDeployConfig,
    SageMakerTrainConfig,
)
from kwslib.sagemaker import inference as handler
from kwslib.sagemaker import launch, train_entry
from kwslib.sagemaker.inference import MAX_AUDIO_SECONDS, MAX_REQUEST_BYTES, RequestError

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")  # v2 is pinned on purpose
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
REGION = "us-east-1"
ACCOUNT = "123456789012"
MOTO_BUCKET = f"sagemaker-{REGION}-{ACCOUNT}"  # the SDK's default bucket under moto's account


@pytest.fixture(scope="module")
def model_dir(trained_model):
    return trained_model / "model"


@pytest.fixture(scope="module")
def torch_model(model_dir):
    return handler.model_fn(str(model_dir))


def wav_of(word: str, seconds: float = 1.0) -> bytes:
    return wav_bytes(tone_of(word, seconds))


# -- the handler, in process -------------------------------------------------------------------------------------


def serve(model, body, content_type, accept="application/json"):
    """input_fn -> predict_fn -> output_fn, as both SageMaker inference toolkits chain them."""
    return handler.output_fn(handler.predict_fn(handler.input_fn(body, content_type), model), accept)


def flac_bytes(samples: np.ndarray, sr: int = SR) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, sr, format="FLAC")
    return buf.getvalue()


def test_handler_answers_every_content_type_with_the_right_label(torch_model):
    b64 = base64.b64encode(wav_of("yes")).decode()
    eight_khz = tone(200 + 50 * TONE_WORDS.index("yes"), sr=8000)  # the "yes" tone sampled at 8 kHz
    requests = [
        (wav_of("yes"), "audio/wav"),
        (bytearray(wav_of("yes")), "audio/x-wav"),  # the model server hands the body over as a bytearray
        (flac_bytes(tone_of("yes")), "audio/flac"),
        (wav_of("yes"), "application/octet-stream"),
        (json.dumps({"inputs": b64}), "application/json"),  # the HF toolkit decodes JSON bodies to str
        (json.dumps({"inputs": b64}).encode(), "application/json; charset=utf-8"),  # ... but not with a charset
        (json.dumps({"inputs": eight_khz.tolist(), "sampling_rate": 8000}), "application/json"),
        (json.dumps({"inputs": tone_of("yes").tolist()}), "application/json"),  # default rate: 16 kHz
    ]
    for body, content_type in requests:
        answer = json.loads(serve(torch_model, body, content_type))
        assert answer["label"] == "yes", content_type
        assert len(answer["top_k"]) == handler.DEFAULT_TOP_K and answer["top_k"][0]["label"] == "yes"
        assert answer["score"] == answer["top_k"][0]["score"] and 0.9 < answer["seconds"] < 1.1
        assert "windows" not in answer


def test_handler_top_k_and_long_audio_windows(torch_model):
    three_seconds = np.concatenate([np.zeros(SR, np.float32), tone_of("no"), np.zeros(SR, np.float32)])
    body = json.dumps({"inputs": base64.b64encode(wav_bytes(three_seconds)).decode(), "parameters": {"top_k": 2}})
    answer = json.loads(serve(torch_model, body, "application/json"))
    assert answer["label"] == "no" and [t["label"] for t in answer["top_k"]][:1] == ["no"]
    assert len(answer["top_k"]) == 2 and answer["seconds"] == 3.0
    assert len(answer["windows"]) == 9  # 1 s windows every 0.25 s over 3 s
    assert answer["best_window"]["label"] == "no" and 0.75 <= answer["best_window"]["start"] <= 1.25


def test_handler_json_lines_answers_line_by_line_and_reports_bad_lines(torch_model):
    lines = [
        json.dumps({"id": "a", "inputs": base64.b64encode(wav_of("up")).decode(), "parameters": {"top_k": 1}}),
        "{not json",
        json.dumps({"id": 3, "inputs": [0.1, float("nan"), 0.2]}),
        json.dumps({"id": "d", "inputs": tone_of("no").tolist()}),
    ]
    out = serve(torch_model, "\n".join(lines) + "\n\n", "application/jsonlines", accept="application/jsonlines")
    rows = [json.loads(line) for line in out.splitlines()]
    assert out.endswith("\n") and len(rows) == 4
    assert rows[0]["id"] == "a" and rows[0]["label"] == "up" and len(rows[0]["top_k"]) == 1
    assert rows[1] == {"error": "line 2 is not valid JSON (Expecting property name enclosed in double quotes at char 1)", "status": 400}  # fmt: skip
    assert rows[2]["id"] == 3 and rows[2]["status"] == 400 and "NaN or Inf" in rows[2]["error"]
    assert rows[3]["id"] == "d" and rows[3]["label"] == "no"
    # Accept: application/json gives the same rows as one JSON array.
    assert json.loads(serve(torch_model, "\n".join(lines), "application/jsonlines")) == rows


def long_wav(seconds: float) -> bytes:
    return wav_bytes(np.zeros(int(seconds * 8000), np.float32), 8000)


BAD_REQUESTS = [
    # (body, content type, status, words in the message)
    (b"", "audio/wav", 400, "empty request body"),
    (b"RIFF\x00\x00junk" * 20, "audio/wav", 400, "not a readable audio file"),
    ("{bad json", "application/json", 400, "body is not valid JSON"),
    ('["inputs"]', "application/json", 400, "must be a JSON object"),
    ('{"input": "UklGRg=="}', "application/json", 400, "JSON has no \"inputs\" (keys: ['input'])"),
    ('{"inputs": "not base64!"}', "application/json", 400, '"inputs" is not valid base64'),
    ('{"inputs": 42}', "application/json", 400, '"inputs" is a int'),
    ('{"inputs": []}', "application/json", 400, '"inputs" is an empty list'),
    ('{"inputs": [[0.1, 0.2], [0.3]]}', "application/json", 400, "flat list of numbers"),
    ('{"inputs": [[0.1, 0.2], [0.3, 0.4]]}', "application/json", 400, "has shape (2, 2)"),
    ('{"inputs": [0.1, NaN, 0.3]}', "application/json", 400, "1 samples are NaN or Inf"),
    ('{"inputs": [0.1, 0.2], "sampling_rate": "16k"}', "application/json", 400, "\"sampling_rate\" '16k'"),
    ('{"inputs": [0.1, 0.2], "sampling_rate": 10}', "application/json", 400, "between 1000 and 384000 Hz"),
    ('{"inputs": [0.1], "parameters": {"top_k": 0}}', "application/json", 400, '"parameters.top_k" 0 must be'),
    ('{"inputs": [0.1], "parameters": {"top_k": "3"}}', "application/json", 400, "\"parameters.top_k\" '3'"),
    ('{"inputs": [0.1], "parameters": {"top_k": true}}', "application/json", 400, '"parameters.top_k" True'),
    ('{"inputs": [0.1], "parameters": {"topk": 3}}', "application/json", 400, "['topk'] not supported"),
    ('{"inputs": [0.1], "parameters": 3}', "application/json", 400, '"parameters" must be an object'),
    ("1,2,3", "text/csv", 415, "Content-Type text/csv is not supported"),
    (b"RIFF", None, 415, "no Content-Type"),
    (b"\x00" * (MAX_REQUEST_BYTES + 1), "audio/wav", 413, "the limit is 10 MB"),
    (long_wav(MAX_AUDIO_SECONDS + 1), "audio/wav", 413, "61.0 s of audio; the limit is 60 s"),
    ("", "application/jsonlines", 400, "empty request body"),
    ("\n\n", "application/jsonlines", 400, "JSON lines body has no lines"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "words"), BAD_REQUESTS)
def test_bad_requests_raise_request_error_with_status_and_message(body, content_type, status, words):
    with pytest.raises(RequestError) as info:
        handler.input_fn(body, content_type)
    err = info.value
    assert err.status_code == err.status == status
    assert words in str(err) and str(err) == err.message == err.phrase and "\n" not in str(err)
    assert isinstance(err, ValueError)  # user input, like every kwslib input error


def test_bad_accept_is_406_and_unknown_errors_are_not_request_errors(torch_model):
    with pytest.raises(RequestError, match="Accept text/csv is not supported") as info:
        handler.output_fn({"label": "yes"}, "text/csv")
    assert info.value.status_code == 406
    assert handler.output_fn({"label": "yes"}, "text/csv, application/json") == '{"label": "yes"}'
    assert handler.output_fn({"label": "yes"}, None) == '{"label": "yes"}'  # no Accept: JSON


def test_request_error_keeps_its_status_in_the_sagemaker_inference_toolkit(monkeypatch):
    """With sagemaker_inference importable (every SageMaker inference container), RequestError is a
    BaseInferenceToolkitError, which that toolkit answers with its status code; the HF toolkit answers 400 + str(e)."""

    class BaseInferenceToolkitError(Exception):  # the toolkit's class, as in sagemaker_inference/errors.py
        def __init__(self, status_code, message, phrase):
            self.status_code, self.message, self.phrase = status_code, message, phrase
            super().__init__(status_code, message, phrase)

    errors = types.ModuleType("sagemaker_inference.errors")
    errors.BaseInferenceToolkitError = BaseInferenceToolkitError
    monkeypatch.setitem(sys.modules, "sagemaker_inference", types.ModuleType("sagemaker_inference"))
    monkeypatch.setitem(sys.modules, "sagemaker_inference.errors", errors)
    spec = importlib.util.spec_from_file_location("container_inference", handler.__file__)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "container_inference", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    assert issubclass(module.RequestError, BaseInferenceToolkitError)

    def sagemaker_inference_status(exc):  # sagemaker_inference.transformer.Transformer.transform's except clause
        return (exc.status_code, exc.message) if isinstance(exc, BaseInferenceToolkitError) else (500, str(exc))

    def huggingface_status(exc):  # sagemaker_huggingface_inference_toolkit HuggingFaceHandlerService.handle
        return 400, str(exc)

    for body, content_type, status, words in [BAD_REQUESTS[0], BAD_REQUESTS[-3], BAD_REQUESTS[18]]:
        with pytest.raises(module.RequestError) as info:
            module.input_fn(body, content_type)
        code, message = sagemaker_inference_status(info.value)
        assert code == status and words in message
        assert huggingface_status(info.value) == (400, message)
    assert sagemaker_inference_status(KeyError("bug")) == (500, "'bug'")  # a real bug stays a 5xx there


def test_handler_reads_s3_uris_in_json_requests(torch_model, aws):
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="audio-in")
    s3.put_object(Bucket="audio-in", Key="clips/yes.wav", Body=wav_of("yes"))
    answer = json.loads(serve(torch_model, json.dumps({"inputs": "s3://audio-in/clips/yes.wav"}), "application/json"))
    assert answer["label"] == "yes"
    with pytest.raises(RequestError, match=r"s3://audio-in/nope.wav could not be read \(NoSuchKey\)") as info:
        handler.input_fn(json.dumps({"inputs": "s3://audio-in/nope.wav"}), "application/json")
    assert info.value.status_code == 400


# -- model.tar.gz ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(model_dir, tmp_path_factory):
    """`kws sagemaker package` of the trained checkpoint (which adds model.onnx), extracted as SageMaker does."""
    root = tmp_path_factory.mktemp("package")
    assert main(["sagemaker", "package", "--model", str(model_dir), "--out", str(root / "model.tar.gz")]) == 0
    extracted = root / "opt_ml_model"
    with tarfile.open(root / "model.tar.gz") as tar:
        names = tar.getnames()
        tar.extractall(extracted, filter="data")
    return root / "model.tar.gz", extracted, names


def test_package_puts_the_model_at_the_root_and_the_handler_in_code(archive, model_dir):
    _, extracted, names = archive
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "kws.json", "model.onnx"):
        assert name in names
    for name in ("code/inference.py", "code/requirements.txt", "code/kwslib/__init__.py", "code/kwslib/inference.py"):
        assert name in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith(("/", "model/"))]
    assert (extracted / "code" / "inference.py").read_text() == open(handler.__file__).read()
    requirements = (extracted / "code" / "requirements.txt").read_text().split()
    assert requirements == launch.pinned(launch.SERVING_REQUIREMENTS_ONNX)
    assert all("==" in r for r in requirements)  # onnxruntime, soundfile, soxr: pinned, nothing else touched


# The inference container, reduced to what matters here: a fresh interpreter, `-I -S` so neither the repo nor the
# site-packages' .pth files (where the editable kwslib install lives) are on sys.path, then the HF handler
# service's steps: code/ first on sys.path, import `inference`, model_fn(model_dir), then each request.
FRESH_CONTAINER = r"""
import importlib, json, sys
model_dir, wav, site_packages = sys.argv[1:4]
sys.path.append(site_packages)
sys.path.insert(0, model_dir + "/code")
inference = importlib.import_module("inference")
model = inference.model_fn(model_dir)
body = open(wav, "rb").read()
out = inference.output_fn(inference.predict_fn(inference.input_fn(body, "audio/wav"), model), "application/json")
try:
    inference.input_fn(b"", "audio/wav")
except Exception as err:
    error = [type(err).__name__, err.status_code, str(err)]
import kwslib
print(json.dumps({"answer": json.loads(out), "kwslib": kwslib.__file__, "backend": model.backend, "error": error,
                  "transformers": "transformers" in sys.modules}))
"""


def run_like_the_container(model_root, wav, tmp_path):
    env = {"PATH": os.environ["PATH"], "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)}
    site_packages = sysconfig.get_paths()["purelib"]
    args = [sys.executable, "-I", "-S", "-c", FRESH_CONTAINER, str(model_root), str(wav), site_packages]
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_archive_is_self_sufficient_in_a_fresh_interpreter(archive, tmp_path):
    _, extracted, _ = archive
    wav = tmp_path / "yes.wav"
    wav.write_bytes(wav_of("yes"))
    done = run_like_the_container(extracted, wav, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["answer"]["label"] == "yes"
    assert result["kwslib"] == str(extracted / "code" / "kwslib" / "__init__.py")  # the shipped copy
    assert result["backend"] == "onnxruntime" and not result["transformers"]  # model.onnx: no transformers needed
    assert result["error"] == ["RequestError", 400, "empty request body: send an audio file's bytes or JSON {\"inputs\": ...}"]  # fmt: skip

    # The control: without code/kwslib the same interpreter cannot import kwslib, so the run above did not
    # borrow the repo's editable install.
    stripped = tmp_path / "without_kwslib"
    shutil.copytree(extracted, stripped)
    shutil.rmtree(stripped / "code" / "kwslib")
    done = run_like_the_container(stripped, wav, tmp_path)
    assert done.returncode != 0 and "No module named 'kwslib'" in done.stderr


@pytest.mark.slow
def test_checkpoint_only_archive_serves_with_torch_in_a_fresh_interpreter(model_dir, tmp_path):
    out = launch.package(model_dir, tmp_path / "model.tar.gz", onnx=False)
    extracted = tmp_path / "model"
    with tarfile.open(out) as tar:
        tar.extractall(extracted, filter="data")
    assert not (extracted / "model.onnx").exists()
    requirements = (extracted / "code" / "requirements.txt").read_text().split()
    assert requirements == launch.pinned(launch.SERVING_REQUIREMENTS_CHECKPOINT)
    assert any(r.startswith("transformers==5.") for r in requirements)  # kwslib's models need transformers 5
    wav = tmp_path / "no.wav"
    wav.write_bytes(wav_of("no"))
    done = run_like_the_container(extracted, wav, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["answer"]["label"] == "no" and result["backend"] == "torch"
    assert result["kwslib"] == str(extracted / "code" / "kwslib" / "__init__.py")


def test_package_of_an_onnx_file(archive, tmp_path):
    _, extracted, _ = archive
    onnx = tmp_path / "exported.onnx"
    shutil.copy2(extracted / "model.onnx", onnx)
    out = launch.package(onnx, tmp_path / "onnx.tar.gz")
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert "model.onnx" in names and "config.json" not in names and "code/inference.py" in names


# -- the training entry point ------------------------------------------------------------------------------------


def render_like_the_training_toolkit(hyperparameters: dict) -> list[str]:
    """What sagemaker-training does with the job's HyperParameters (strings, JSON-encoded by the SDK):
    environment.read_hyperparameters json-decodes each value (keeping undecodable ones), every `sagemaker_*` key
    is split off (mapping.split_by_criteria with params.SAGEMAKER_PREFIX), and mapping.to_cmd_args renders the rest
    sorted by key as `--key str(value)` (dicts as k=v,k=v)."""
    decoded = {}
    for key, value in hyperparameters.items():
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError):
            decoded[key] = value
    user = {k: v for k, v in decoded.items() if not k.startswith("sagemaker_")}
    argv = []
    for key in sorted(user):
        value = user[key]
        if hasattr(value, "items"):
            value = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        argv += [f"--{key}" if len(key) > 1 else f"-{key}", "" if value is None else str(value)]
    return argv


def sdk_encoded(hyperparameters: dict) -> dict:
    """The SDK's EstimatorBase._json_encode_hyperparameters, plus reserved keys the HF estimator adds."""
    from sagemaker.estimator import EstimatorBase

    reserved = {"sagemaker_program": "train_entry.py", "sagemaker_torch_distributed_enabled": True}
    return EstimatorBase._json_encode_hyperparameters({**hyperparameters, **reserved})


def test_entry_point_parses_what_sagemaker_renders_from_kws_train_options():
    cfg = SageMakerTrainConfig(data="google/speech_commands", spot=True)
    passthrough = ["--", "--epochs", "3", "--no-augment", "--words", "yes,no", "--lr", "1e-05", "--mixed-precision",
                   "bf16", "--freeze-feature-encoder", "--max-steps", "500", "--model", "wav2vec2-tiny"]  # fmt: skip
    hyperparameters = launch.training_hyperparameters(passthrough, cfg, checkpointing=True)
    assert hyperparameters == {
        "epochs": 3, "augment": False, "words": "yes,no", "lr": 1e-05, "mixed_precision": "bf16",
        "freeze_feature_encoder": True, "max_steps": 500, "model": "wav2vec2-tiny",
        "data": "google/speech_commands", "run_dir": "/opt/ml/checkpoints",
    }  # fmt: skip
    argv = render_like_the_training_toolkit(sdk_encoded(hyperparameters))
    assert "--augment" in argv and argv[argv.index("--augment") + 1] == "False"  # str(False), not --no-augment
    args = train_entry.parse_args(argv)
    data_cfg, train_cfg, augment_cfg = train_entry.configs(args, args.data, args.run_dir)
    assert (train_cfg.epochs, train_cfg.lr, train_cfg.max_steps, train_cfg.mixed_precision) == (3, 1e-05, 500, "bf16")
    assert train_cfg.resume and train_cfg.out == "/opt/ml/checkpoints" and train_cfg.model == "wav2vec2-tiny"
    assert data_cfg.words == ["yes", "no"] and data_cfg.source == "google/speech_commands"
    assert augment_cfg.enabled is False and train_cfg.freeze_feature_encoder is True

    # Keys the toolkit passes through with the sagemaker_ prefix are skipped; anything else unknown is an error.
    assert train_entry.parse_args(["--epochs", "2", "--sagemaker_x", "1", "--sagemaker_y=2"]).epochs == 2
    with pytest.raises(SystemExit):
        train_entry.parse_args(["--epochs", "2", "--bogus", "1"])

    # The predecessor's bug: `kws train`'s own parser rejects what the toolkit renders (`--augment False`).
    from kwslib.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--augment", "False"])


@pytest.mark.parametrize(
    ("passthrough", "words"),
    [
        (["--epochs", "zero"], "invalid int value: 'zero'"),
        (["--mixed-precision", "fp8"], "--mixed-precision fp8 is unknown"),
        (["--out", "runs/x"], "unrecognized arguments: --out runs/x"),
        (["--data", "other/dataset"], "--data are set by kws sagemaker train"),
        (["--augment", "maybe"], "expected True or False, got 'maybe'"),
    ],
)
def test_bad_training_options_fail_before_launch(passthrough, words):
    cfg = SageMakerTrainConfig(data="google/speech_commands")
    with pytest.raises(ValueError, match="^training options after --: ") as info:
        launch.training_hyperparameters(passthrough, cfg, checkpointing=False)
    assert words in str(info.value)


def test_train_requirements_cover_kwslib_dependencies():
    from importlib.metadata import requires

    names = {re.split(r"[=<>~!; \[]", r)[0].lower().replace("_", "-") for r in requires("kwslib") if "extra" not in r}
    shipped = {n.lower().replace("_", "-") for n in launch.TRAIN_REQUIREMENTS}
    assert names - shipped == {"torch"}  # torch stays the container's CUDA build


@pytest.fixture
def entry_data(tmp_path):
    speakers = [f"{i:08x}" for i in range(0xD0, 0xDA)]
    return write_sc_folder(tmp_path / "train_channel", TONE_WORDS, speakers)


def test_entry_point_trains_writes_a_deployable_model_and_resumes_after_interruption(
    entry_data, tmp_path, monkeypatch, capsys
):
    """What the training container runs, end to end on tiny data: hyperparameters rendered as the toolkit renders
    them, the data channel from SM_CHANNEL_TRAIN, the run folder in the (S3-synced) checkpoint folder."""
    checkpoints = tmp_path / "opt_ml_checkpoints"
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(entry_data))
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", str(tmp_path / "output_data"))
    hyperparameters = {"epochs": 3, "batch_size": 8, "num_workers": 0, "lr": 0.01, "checkpoint_every_steps": 2,
                       "keep_checkpoints": 100, "augment": False, "run_dir": str(checkpoints)}  # fmt: skip
    argv = render_like_the_training_toolkit(sdk_encoded(hyperparameters))

    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model_1"))
    assert train_entry.main(argv) == 0
    captured = capsys.readouterr()
    output = captured.out + captured.err
    model = tmp_path / "model_1"
    for name in ("config.json", "model.safetensors", "kws.json", "preprocessor_config.json", "model.onnx"):
        assert (model / name).is_file(), name
    for name in ("inference.py", "requirements.txt", "kwslib/__init__.py"):
        assert (model / "code" / name).is_file(), name
    assert (tmp_path / "output_data" / "metrics.json").is_file()
    clf = handler.model_fn(str(model))
    assert clf.backend == "onnxruntime" and clf.labels[:3] == ["yes", "no", "up"] and len(clf.labels) == 12

    # Every metric definition matches what training printed, and parses as a number.
    found = {m["Name"]: [float(v) for v in re.findall(m["Regex"], output)] for m in launch.METRIC_DEFINITIONS}
    assert len(found["validation:accuracy"]) == len(found["validation:loss"]) == 3  # one per epoch
    assert len(found["best:validation_accuracy"]) == len(found["test:accuracy"]) == 1
    assert found["train:loss"] and all(v >= 0 for v in found["train:loss"])
    assert all(0 <= v <= 1 for v in found["validation:accuracy"] + found["test:accuracy"])

    # A spot interruption: the job restarts with the checkpoint folder as SageMaker restored it from S3, here the
    # state after an early step plus one checkpoint whose upload was cut off (no weights, optimizer, scheduler).
    steps = sorted(int(p.name.split("-")[1]) for p in (checkpoints / "checkpoints").glob("step-*"))
    assert len(steps) >= 3
    for step in steps[1:]:
        shutil.rmtree(checkpoints / "checkpoints" / f"step-{step}")
    partial = checkpoints / "checkpoints" / "step-99999"
    partial.mkdir()
    shutil.copy2(checkpoints / "checkpoints" / f"step-{steps[0]}" / "kws_trainer_state.json", partial)

    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model_2"))
    assert train_entry.main(argv + ["--export_onnx", "False"]) == 0
    output = capsys.readouterr().out
    assert "removed incomplete checkpoint step-99999" in output
    assert f"resuming from step-{steps[0]}" in output
    assert len(re.findall(launch.METRIC_DEFINITIONS[1]["Regex"], output)) >= 1  # it trained the remaining epochs
    assert (tmp_path / "model_2" / "model.safetensors").is_file() and not (tmp_path / "model_2" / "model.onnx").exists()
    assert handler.model_fn(str(tmp_path / "model_2")).backend == "torch"


# -- launch, against moto -----------------------------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch):
    """moto's mock_aws with fake credentials: real boto3/SDK calls, no account."""
    moto = pytest.importorskip("moto")
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with moto.mock_aws():
        yield


@pytest.fixture
def sent(monkeypatch):
    """The parameters of every SageMaker API call our sessions make, as sent (moto rewrites some in its answers)."""
    calls = []
    real = launch.session

    def observed(cfg):
        sess = real(cfg)
        sess.sagemaker_client.meta.events.register(
            "provide-client-params.sagemaker", lambda params, model, **kw: calls.append((model.name, dict(params)))
        )
        return sess

    monkeypatch.setattr(launch, "session", observed)
    return calls


def sagemaker_client():
    import boto3

    return boto3.client("sagemaker", region_name=REGION)


def test_train_creates_a_spot_job_with_channel_checkpoints_metrics_and_parseable_hyperparameters(aws, sent, tmp_path):
    import boto3

    cfg = SageMakerConfig(role=ROLE, region=REGION)
    train_cfg = SageMakerTrainConfig(data="s3://my-data/speech_commands/", spot=True, max_run=3600, job_name="kws-t1")
    job = launch.train(cfg, train_cfg, ["--", "--epochs", "30", "--no-augment", "--words", "yes,no"])
    described = sagemaker_client().describe_training_job(TrainingJobName="kws-t1")

    image = described["AlgorithmSpecification"]["TrainingImage"]
    assert "huggingface-pytorch-training:2.8.0-transformers4.56.2-gpu-py312" in image
    assert described["RoleArn"] == ROLE and described["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert described["InputDataConfig"][0]["ChannelName"] == "train"
    assert described["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://my-data/speech_commands/"
    assert described["EnableManagedSpotTraining"] is True
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    checkpoint_uri = f"s3://{MOTO_BUCKET}/kws/checkpoints/kws-t1"
    assert described["CheckpointConfig"] == {"S3Uri": checkpoint_uri, "LocalPath": "/opt/ml/checkpoints"}
    assert job.checkpoint_s3_uri == checkpoint_uri
    assert described["OutputDataConfig"]["S3OutputPath"] == f"s3://{MOTO_BUCKET}/kws/jobs"

    # moto answers every training job with its own canned MetricDefinitions ("test:dcg"), so read what was sent.
    (request,) = [params for name, params in sent if name == "CreateTrainingJob"]
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == list(launch.METRIC_DEFINITIONS)
    assert described["AlgorithmSpecification"]["MetricDefinitions"] != list(launch.METRIC_DEFINITIONS)

    # The hyperparameters as stored, rendered as the toolkit renders them, parse with the entry point's parser.
    stored = described["HyperParameters"]
    assert stored["sagemaker_program"] == '"train_entry.py"'
    args = train_entry.parse_args(render_like_the_training_toolkit(stored))
    _, train_args, augment_cfg = train_entry.configs(args, "/opt/ml/input/data/train", args.run_dir)
    assert (train_args.epochs, augment_cfg.enabled, args.words, args.run_dir) == (
        30,
        False,
        ["yes", "no"],
        "/opt/ml/checkpoints",
    )
    assert args.data is None  # the S3 data arrives as the train channel, not a hyperparameter

    # The source folder the SDK uploaded: the entry point at its root, kwslib beside it, requirements without torch.
    submit = json.loads(stored["sagemaker_submit_directory"])
    bucket, key = submit[len("s3://") :].split("/", 1)
    tar_path = tmp_path / "sourcedir.tar.gz"
    boto3.client("s3", region_name=REGION).download_file(bucket, key, str(tar_path))
    with tarfile.open(tar_path) as tar:
        names = tar.getnames()
        requirements = tar.extractfile("requirements.txt").read().decode().split()
    assert {"train_entry.py", "requirements.txt", "kwslib/__init__.py", "kwslib/train.py"} <= set(names)
    assert requirements == launch.pinned(launch.TRAIN_REQUIREMENTS)
    assert not [r for r in requirements if r.startswith("torch")]


def test_train_from_a_hub_dataset_on_two_instances_uses_torchrun(aws, capsys):
    import boto3

    argv = ["sagemaker", "train", "--role", ROLE, "--region", REGION, "--bucket", "my-bucket", "--prefix", "team/kws/",
            "--data", "google/speech_commands", "--instance-count", "2", "--job-name", "kws-t2", "--", "--epochs", "5"]  # fmt: skip
    assert main(argv) == 1  # --bucket names a bucket that does not exist (yet): one line, exit 1
    err = capsys.readouterr().err
    assert err.startswith("kws: error: starting training job kws-t2: Failed to upload") and "NoSuchBucket" in err
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="my-bucket")
    assert main(argv) == 0
    assert "started training job kws-t2" in capsys.readouterr().out
    described = sagemaker_client().describe_training_job(TrainingJobName="kws-t2")
    assert "InputDataConfig" not in described or not described["InputDataConfig"]
    assert "CheckpointConfig" not in described and not described.get("EnableManagedSpotTraining")
    stored = described["HyperParameters"]
    assert json.loads(stored["sagemaker_torch_distributed_enabled"]) is True
    assert json.loads(stored["data"]) == "google/speech_commands" and "run_dir" not in stored
    assert described["ResourceConfig"]["InstanceCount"] == 2
    assert described["OutputDataConfig"]["S3OutputPath"] == "s3://my-bucket/team/kws/jobs"
    args = train_entry.parse_args(render_like_the_training_toolkit(stored))
    assert args.data == "google/speech_commands" and args.run_dir is None and args.epochs == 5


def test_deploy_realtime_and_serverless_invoke_and_delete(aws, archive, torch_model, tmp_path, capsys):
    tar_path, _, _ = archive
    cfg = SageMakerConfig(role=ROLE, region=REGION)
    sm = sagemaker_client()

    realtime = launch.deploy(cfg, SageMakerDeployConfig(model_data=str(tar_path), endpoint_name="kws-rt", wait=False))
    assert realtime.model_data == f"s3://{MOTO_BUCKET}/kws/models/model.tar.gz"  # the local archive was uploaded
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName="kws-rt")["EndpointConfigName"]
    )
    (variant,) = config["ProductionVariants"]
    assert variant["InstanceType"] == "ml.m5.xlarge" and variant["InitialInstanceCount"] == 1
    container = sm.describe_model(ModelName=realtime.model_name)["PrimaryContainer"]
    assert "huggingface-pytorch-inference:2.6.0-transformers4.51.3-cpu-py312" in container["Image"]
    assert container["ModelDataUrl"] == realtime.model_data
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"

    assert main(["sagemaker", "deploy", "--role", ROLE, "--region", REGION, "--model-data", realtime.model_data,
                 "--serverless", "--memory", "2048", "--concurrency", "3", "--endpoint-name", "kws-sl", "--no-wait"]) == 0  # fmt: skip
    assert "endpoint kws-sl (serverless)" in capsys.readouterr().out
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName="kws-sl")["EndpointConfigName"]
    )
    (variant,) = config["ProductionVariants"]
    assert (
        variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 3} and "InstanceType" not in variant
    )

    # moto's invoke_endpoint never runs the container: it answers from a queue. Queue what our handler says about
    # the same request, and check the call path end to end (CLI -> SDK Predictor -> sagemaker-runtime -> JSON).
    wav = tmp_path / "up.wav"
    wav.write_bytes(wav_of("up"))
    request = json.dumps({"inputs": base64.b64encode(wav.read_bytes()).decode(), "parameters": {"top_k": 2}})
    expected = serve(torch_model, request, "application/json")
    import requests

    requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
        json={
            "results": [
                {
                    "Body": expected,
                    "ContentType": "application/json",
                    "InvokedProductionVariant": "AllTraffic",
                    "CustomAttributes": "",
                }
            ]
        },  # fmt: skip
    )
    assert main(["sagemaker", "invoke", "--region", REGION, "--endpoint-name", "kws-rt", str(wav), "--top-k", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(expected) and printed["label"] == "up" and len(printed["top_k"]) == 2

    # moto 5.2.5 decodes every request body as UTF-8, so a raw audio body (the default invoke, Content-Type
    # audio/wav) fails inside moto before reaching its invoke_endpoint; real SageMaker takes binary bodies.
    with pytest.raises(UnicodeDecodeError):
        launch.invoke(cfg, "kws-rt", wav)

    gone = launch.delete(cfg, "kws-rt")
    assert gone == {"endpoint": "kws-rt", "endpoint_config": "kws-rt", "models": ["kws-rt"]}
    assert "kws-rt" not in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    assert "kws-rt" not in [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]]
    assert "kws-rt" not in [m["ModelName"] for m in sm.list_models()["Models"]]
    assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == ["kws-sl"]
    assert main(["sagemaker", "delete", "--region", REGION, "--endpoint-name", "kws-rt"]) == 1
    assert "Could not find endpoint" in capsys.readouterr().err


def test_batch_transform_over_jsonl_and_over_audio_objects(aws, archive):
    tar_path, _, _ = archive
    cfg = SageMakerConfig(role=ROLE, region=REGION)
    sm = sagemaker_client()
    lines = launch.batch(
        cfg,
        SageMakerBatchConfig(input="s3://in-bucket/requests.jsonl", output="s3://out-bucket/jsonl/", model_data=str(tar_path),
                             job_name="kws-b1"),
    )  # fmt: skip
    described = sm.describe_transform_job(TransformJobName=lines)
    assert described["TransformInput"] == {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://in-bucket/requests.jsonl"}},
        "ContentType": "application/jsonlines",
        "SplitType": "Line",
    }
    assert described["TransformOutput"] == {"S3OutputPath": "s3://out-bucket/jsonl/", "Accept": "application/jsonlines", "AssembleWith": "Line"}  # fmt: skip
    assert described["BatchStrategy"] == "MultiRecord" and described["MaxPayloadInMB"] == 6
    assert described["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    model = sm.describe_model(ModelName=described["ModelName"])["PrimaryContainer"]
    assert model["ModelDataUrl"] == f"s3://{MOTO_BUCKET}/kws/models/model.tar.gz"

    audio = launch.batch(
        cfg,
        SageMakerBatchConfig(
            input="s3://in-bucket/clips/", output="s3://out-bucket/audio/", model_name=described["ModelName"]
        ),
    )
    described = sm.describe_transform_job(TransformJobName=audio)
    assert described["TransformInput"]["ContentType"] == "application/octet-stream"
    assert "SplitType" not in described["TransformInput"] and described["BatchStrategy"] == "SingleRecord"
    assert described["TransformOutput"]["Accept"] == "application/jsonlines"


# -- the command line: one line for a user mistake -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["train", "--data", "google/speech_commands"], "--role is required"),
        (["deploy", "--model-data", "s3://my-bucket/model.tar.gz"], "--role is required"),
        (["train", "--role", "admin", "--data", "google/speech_commands"], "--role admin is not an IAM role ARN"),
        (["train", "--role", ROLE, "--data", "s3:/bucket/sc"], "--data s3:/bucket/sc is not an S3 URI"),
        (
            ["train", "--role", ROLE, "--data", "s3://my-bucket/sc", "--checkpoint-s3-uri", "b/ckpt"],
            "--checkpoint-s3-uri b/ckpt is not an S3 URI",
        ),  # fmt: skip
        (
            ["train", "--role", ROLE, "--data", "s3://my-bucket/sc", "--max-wait", "10"],
            "--max-wait only applies to spot",
        ),
        (["train", "--role", ROLE, "--data", "s3://my-bucket/sc", "--", "--epochs", "x"], "training options after --"),
        (["deploy", "--role", ROLE, "--model-data", "missing.tar.gz"], "--model-data missing.tar.gz: no such file"),
        (
            ["deploy", "--role", ROLE, "--model-data", "s3://my-bucket/m.tar.gz", "--serverless", "--memory", "3000"],
            "--memory 3000 is not a serverless size",
        ),  # fmt: skip
        (
            ["batch", "--role", ROLE, "--input", "s3://in-bucket/x.jsonl", "--output", "out/"],
            "--output out/ is not an S3 URI",
        ),
        (
            ["batch", "--role", ROLE, "--input", "s3://in-bucket/x.jsonl", "--output", "s3://out-bucket/"],
            "give exactly one of --model-data",
        ),  # fmt: skip
        (
            ["package", "--model", "no/such/model", "--out", "model.tar.gz"],
            "--model no/such/model: no such file or folder",
        ),  # fmt: skip
        (["invoke", "--region", REGION, "--endpoint-name", "e", "no_such.wav"], "no_such.wav: no such audio file"),
    ],
)
def test_cli_user_mistakes_are_one_line(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    assert main(["sagemaker", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kws: error: ") and words in err and err.count("\n") == 1


def test_cli_package_rejects_a_local_data_folder_and_a_bad_out(tmp_path, capsys, model_dir):
    assert main(["sagemaker", "train", "--role", ROLE, "--data", str(tmp_path)]) == 2
    assert "is a local folder; SageMaker reads S3: aws s3 sync" in capsys.readouterr().err
    assert main(["sagemaker", "package", "--model", str(model_dir), "--out", str(tmp_path / "model.zip")]) == 2
    assert "must end in .tar.gz" in capsys.readouterr().err


def test_missing_sdk_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sagemaker", None)  # `import sagemaker` raises ImportError
    with pytest.raises(launch.SageMakerError, match=r"pip install 'kwslib\[sagemaker\]'"):
        launch.import_sdk()
