"""The SageMaker serving handler: `model_fn`, `input_fn`, `predict_fn`, `output_fn` on `kwslib.inference.Classifier`.

`kws sagemaker package` (and the training entry point) copy this file to `code/inference.py` of a model.tar.gz,
with a copy of `kwslib` beside it (`code/kwslib/`) and `code/requirements.txt`. The Hugging Face inference container
puts `code/` first on `sys.path`, pip-installs the requirements and imports `inference`, so `import kwslib` below
finds the shipped copy: the archive needs nothing from PyPI that is not in its requirements.

Requests (`Content-Type`):

    audio/wav, audio/x-wav, audio/flac, audio/ogg, ..., application/octet-stream   the audio file's bytes
    application/json    {"inputs": "<base64 audio file>" | "s3://bucket/key" | [samples...],
                         "sampling_rate": 16000 (samples only), "parameters": {"top_k": 5}}
    application/jsonlines   one such JSON object a line (batch transform); "id" is echoed back

Responses are `Prediction.to_dict()`: {"label", "score", "top_k": [{"label", "score"}], "seconds"} plus
"best_window" and "windows" for audio longer than one clip; JSON for `Accept: application/json` (the default), one
line per input for `application/jsonlines`. A JSONL line that cannot be used gets {"id", "error", "status"} in its
place, so one bad line does not fail a whole batch transform.

Bad requests raise `RequestError`, which carries an HTTP status (400 bad payload, 413 too large, 415 unsupported
content type, 406 unsupported accept) and a one-line message:
- sagemaker-inference-toolkit (PyTorch/MMS containers) answers a `BaseInferenceToolkitError` with its `status_code`
  and puts `message` in the body; any other exception becomes a 500. `RequestError` subclasses it when the toolkit
  is importable, so the status survives there.
- sagemaker-huggingface-inference-toolkit (the Hugging Face containers this project deploys to) wraps every
  exception from the handler functions in `PredictionException(str(e), 400)`: the client gets 400 and our message.
  `str(RequestError)` is the message alone, so the message reads the same in both.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field

import numpy as np

from kwslib.audio import AudioError, load_audio, read
from kwslib.config import SAMPLE_RATE
from kwslib.inference import Classifier

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # whole request body; real-time endpoints stop at 6 MB, serverless at 4 MB
MAX_AUDIO_SECONDS = 60.0  # per input, after decoding: 60 s is 237 windows at the 0.25 s hop
DEFAULT_TOP_K = 5
ONNX_NAME = "model.onnx"  # preferred over the checkpoint files when both are in the archive (no transformers needed)
MIN_SAMPLING_RATE, MAX_SAMPLING_RATE = 1_000, 384_000

AUDIO_TYPES = frozenset(
    {
        "audio/wav",
        "audio/x-wav",
        "audio/wave",
        "audio/vnd.wave",
        "audio/flac",
        "audio/x-flac",
        "audio/ogg",
        "audio/mpeg",
        "application/octet-stream",
    }
)
JSON_TYPE = "application/json"
JSONL_TYPES = frozenset({"application/jsonlines", "application/x-jsonlines", "application/jsonl"})
ACCEPT_JSONL = "application/jsonlines"
PARAMETERS = ("top_k",)

BAD_REQUEST, NOT_ACCEPTABLE, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE = 400, 406, 413, 415

try:  # present in every SageMaker inference container; absent locally, where a stand-in with the same fields is used
    from sagemaker_inference.errors import BaseInferenceToolkitError as _ToolkitError
except ImportError:

    class _ToolkitError(Exception):
        def __init__(self, status_code: int, message: str, phrase: str):
            self.status_code, self.message, self.phrase = status_code, message, phrase
            super().__init__(status_code, message, phrase)


class RequestError(_ToolkitError, ValueError):
    """A request the endpoint cannot answer: `status` (400, 406, 413 or 415) and a one-line `message`."""

    def __init__(self, status: int, message: str):
        super().__init__(status, message, message)
        self.status_code, self.message, self.phrase = status, message, message

    @property
    def status(self) -> int:
        return self.status_code

    def __str__(self) -> str:
        return self.message


@dataclass
class Item:
    """One input of a request: decoded 16 kHz samples, or why it could not be used."""

    id: object = None
    samples: np.ndarray | None = None
    top_k: int = DEFAULT_TOP_K
    error: RequestError | None = None


@dataclass
class ServingRequest:
    """What `input_fn` hands `predict_fn`: one item (audio or JSON) or one per line (JSON lines)."""

    items: list[Item] = field(default_factory=list)
    lines: bool = False


# -- the four handler functions ---------------------------------------------------------------------------------


def model_fn(model_dir: str) -> Classifier:
    """`<model_dir>/model.onnx` on onnxruntime when present, else the checkpoint files at `model_dir`'s root."""
    onnx = os.path.join(model_dir, ONNX_NAME)
    return Classifier.load(onnx if os.path.isfile(onnx) else model_dir)


def input_fn(input_data, content_type: str | None) -> ServingRequest:
    """The request body (bytes, or str for JSON) -> a ServingRequest; RequestError for anything unusable."""
    kind = (content_type or "").split(";")[0].strip().lower()
    body = _as_bytes(input_data)
    if not kind:
        raise RequestError(UNSUPPORTED_MEDIA_TYPE, f"no Content-Type; send one of {_supported_types()}")
    if kind not in AUDIO_TYPES and kind != JSON_TYPE and kind not in JSONL_TYPES:
        raise RequestError(
            UNSUPPORTED_MEDIA_TYPE, f"Content-Type {kind} is not supported; use one of {_supported_types()}"
        )
    if len(body) == 0:
        raise RequestError(BAD_REQUEST, 'empty request body: send an audio file\'s bytes or JSON {"inputs": ...}')
    if len(body) > MAX_REQUEST_BYTES:
        raise RequestError(
            PAYLOAD_TOO_LARGE,
            f"request body is {len(body) / 2**20:.1f} MB; the limit is {MAX_REQUEST_BYTES // 2**20} MB "
            f"(and {MAX_AUDIO_SECONDS:g} s of audio): split the audio or use batch transform",
        )
    if kind in AUDIO_TYPES:
        return ServingRequest([Item(samples=decode_audio_bytes(body, f"{kind} body"))])
    if kind == JSON_TYPE:
        return ServingRequest([parse_item(_json_object(body.decode("utf-8", errors="replace"), "body"))])
    lines = [line for line in body.decode("utf-8", errors="replace").splitlines() if line.strip()]
    if not lines:
        raise RequestError(BAD_REQUEST, "JSON lines body has no lines; send one JSON object per line")
    items = []
    for n, line in enumerate(lines, 1):
        record: dict = {}
        try:
            record = _json_object(line, f"line {n}")
            items.append(parse_item(record, where=f"line {n}: "))
        except RequestError as err:
            items.append(Item(id=record.get("id"), error=err))
    return ServingRequest(items, lines=True)


def predict_fn(data: ServingRequest, model: Classifier):
    """Score every decoded item in one batch -> a result dict (or a list of them for JSON lines)."""
    good = [item for item in data.items if item.error is None]
    predictions = []
    if good:
        top_k = max(item.top_k for item in good)
        predictions = model.predict_batch([item.samples for item in good], top_k, sample_rate=SAMPLE_RATE)
    by_item = dict(zip(map(id, good), predictions))
    results = []
    for item in data.items:
        if item.error is not None:
            result = {"error": item.error.message, "status": item.error.status}
        else:
            result = by_item[id(item)].to_dict()
            result["top_k"] = result["top_k"][: item.top_k]
        if item.id is not None:
            result = {"id": item.id, **result}
        results.append(result)
    return results if data.lines else results[0]


def output_fn(prediction, accept: str | None) -> str:
    """JSON (default) or JSON lines, one line per input."""
    kinds = [a.split(";")[0].strip().lower() for a in (accept or "").split(",") if a.strip()] or ["*/*"]
    for kind in kinds:
        if kind in (JSON_TYPE, "*/*", "application/*"):
            return json.dumps(prediction)
        if kind in JSONL_TYPES:
            rows = prediction if isinstance(prediction, list) else [prediction]
            return "".join(json.dumps(row) + "\n" for row in rows)
    raise RequestError(NOT_ACCEPTABLE, f"Accept {accept} is not supported; use {JSON_TYPE} or {ACCEPT_JSONL}")


# -- parsing ---------------------------------------------------------------------------------------------------


def parse_item(record: dict, *, where: str = "") -> Item:
    """One JSON request object -> an Item with decoded samples (RequestError naming the bad field otherwise)."""
    if "inputs" not in record:
        raise RequestError(
            BAD_REQUEST,
            f'{where}JSON has no "inputs" (keys: {sorted(record)}); send {{"inputs": "<base64 audio file>"}} or '
            f'{{"inputs": [samples...], "sampling_rate": 16000}}',
        )
    top_k = parse_top_k(record.get("parameters"), where)
    inputs = record["inputs"]
    if isinstance(inputs, str) and inputs.startswith("s3://"):
        samples = decode_audio_bytes(read_s3(inputs, where), f"{where}{inputs}")
    elif isinstance(inputs, str):
        try:
            raw = base64.b64decode(inputs, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(
                BAD_REQUEST, f'{where}"inputs" is not valid base64; send base64.b64encode(<audio file bytes>)'
            ) from None
        if not raw:
            raise RequestError(BAD_REQUEST, f'{where}"inputs" is empty; send a base64 audio file')
        samples = decode_audio_bytes(raw, f"{where}base64 inputs")
    elif isinstance(inputs, list):
        samples = decode_samples(inputs, record.get("sampling_rate", SAMPLE_RATE), where)
    else:
        raise RequestError(
            BAD_REQUEST,
            f'{where}"inputs" is a {type(inputs).__name__}; send a base64 string, an s3:// URI or a list of samples',
        )
    return Item(id=record.get("id"), samples=samples, top_k=top_k)


def parse_top_k(parameters, where: str = "") -> int:
    if parameters is None:
        return DEFAULT_TOP_K
    if not isinstance(parameters, dict):
        raise RequestError(BAD_REQUEST, f'{where}"parameters" must be an object such as {{"top_k": 3}}')
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise RequestError(BAD_REQUEST, f'{where}"parameters" {unknown} not supported; the only one is top_k')
    top_k = parameters.get("top_k", DEFAULT_TOP_K)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise RequestError(BAD_REQUEST, f'{where}"parameters.top_k" {top_k!r} must be a whole number of at least 1')
    return top_k


def decode_audio_bytes(raw: bytes, name: str) -> np.ndarray:
    """An audio file's bytes -> mono float32 at 16 kHz; 400 for undecodable audio, 413 over MAX_AUDIO_SECONDS."""
    try:
        data, rate = read(raw, name=name)
    except AudioError as err:
        raise RequestError(BAD_REQUEST, str(err)) from None
    _check_duration(len(data) / rate, name)
    return _resample(data, rate, name)


def decode_samples(samples: list, sampling_rate, where: str = "") -> np.ndarray:
    """A JSON list of samples at `sampling_rate` -> mono float32 at 16 kHz."""
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, int):
        raise RequestError(BAD_REQUEST, f'{where}"sampling_rate" {sampling_rate!r} must be a whole number of Hz')
    if not MIN_SAMPLING_RATE <= sampling_rate <= MAX_SAMPLING_RATE:
        raise RequestError(
            BAD_REQUEST,
            f'{where}"sampling_rate" {sampling_rate} must be between {MIN_SAMPLING_RATE} and {MAX_SAMPLING_RATE} Hz',
        )
    if not samples:
        raise RequestError(BAD_REQUEST, f'{where}"inputs" is an empty list; send at least one sample')
    try:
        array = np.asarray(samples, dtype=np.float32)
    except (TypeError, ValueError):
        raise RequestError(BAD_REQUEST, f'{where}"inputs" must be a flat list of numbers (mono samples)') from None
    if array.ndim != 1:
        raise RequestError(BAD_REQUEST, f'{where}"inputs" has shape {array.shape}; send a flat list of mono samples')
    name = f"{where}inputs"
    _check_duration(len(array) / sampling_rate, name)
    return _resample(array, sampling_rate, name)


def read_s3(uri: str, where: str = "") -> bytes:
    """The bytes of one S3 object (the endpoint's or transform job's role must be allowed to read it)."""
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        raise RequestError(BAD_REQUEST, f'{where}"inputs" {uri} is not an S3 object URI; use s3://bucket/key')
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise RequestError(BAD_REQUEST, f"{where}{uri}: this server has no boto3 to read S3; send the audio") from None
    try:
        obj = boto3.client("s3").get_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as err:
        code = getattr(err, "response", {}).get("Error", {}).get("Code") or type(err).__name__
        raise RequestError(
            BAD_REQUEST, f"{where}{uri} could not be read ({code}); check the URI and the role"
        ) from None
    if obj.get("ContentLength", 0) > MAX_REQUEST_BYTES:
        raise RequestError(
            PAYLOAD_TOO_LARGE,
            f"{where}{uri} is {obj['ContentLength'] / 2**20:.1f} MB; the limit is {MAX_REQUEST_BYTES // 2**20} MB",
        )
    return obj["Body"].read()


def _check_duration(seconds: float, name: str) -> None:
    if seconds > MAX_AUDIO_SECONDS:
        raise RequestError(
            PAYLOAD_TOO_LARGE,
            f"{name}: {seconds:.1f} s of audio; the limit is {MAX_AUDIO_SECONDS:g} s per input: split it "
            "(e.g. one JSON line per minute) or use `kws predict` locally",
        )


def _resample(data: np.ndarray, rate: int, name: str) -> np.ndarray:
    try:
        return load_audio(data, SAMPLE_RATE, source_rate=rate, name=name)  # mono, finite (NaN/Inf rejected), 16 kHz
    except AudioError as err:
        raise RequestError(BAD_REQUEST, str(err)) from None


def _json_object(text: str, where: str) -> dict:
    try:
        value = json.loads(text)  # NaN/Infinity literals parse to floats and are rejected by the sample check
    except json.JSONDecodeError as err:
        raise RequestError(BAD_REQUEST, f"{where} is not valid JSON ({err.msg} at char {err.pos})") from None
    if not isinstance(value, dict):
        raise RequestError(
            BAD_REQUEST, f'{where} must be a JSON object such as {{"inputs": ...}}, not {type(value).__name__}'
        )
    return value


def _as_bytes(input_data) -> bytes:
    if isinstance(input_data, str):
        return input_data.encode("utf-8")
    if isinstance(input_data, (bytes, bytearray, memoryview)):
        return bytes(input_data)
    if hasattr(input_data, "read"):
        return input_data.read()
    if input_data is None:
        return b""
    raise RequestError(BAD_REQUEST, f"request body of type {type(input_data).__name__} is not bytes")


def _supported_types() -> str:
    return ", ".join(["audio/wav", "audio/flac", "application/octet-stream", JSON_TYPE, ACCEPT_JSONL])
