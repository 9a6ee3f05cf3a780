"""Run kws on Amazon SageMaker with the SageMaker Python SDK v2: train, package, deploy, invoke, batch, delete.

    kws sagemaker train   --role ARN --data s3://bucket/speech_commands/ [--spot] [-- --epochs 30 --model compact]
    kws sagemaker package --model runs/demo/model --out model.tar.gz
    kws sagemaker deploy  --role ARN --model-data model.tar.gz [--serverless --memory 3072 --concurrency 5]
    kws sagemaker invoke  --endpoint-name kws-... clip.wav
    kws sagemaker batch   --role ARN --model-data s3://.../model.tar.gz --input s3://.../requests.jsonl --output s3://...
    kws sagemaker delete  --endpoint-name kws-...

Images (the newest pairs in the SDK's image_uri_config/huggingface.json for sagemaker 2.257):
training `huggingface-pytorch-training` transformers 4.56.2 / PyTorch 2.8.0 / py312 (CUDA 12.9); serving
`huggingface-pytorch-inference` transformers 4.51.3 / PyTorch 2.6.0 / py312, which has a CPU build (serverless
needs one). kwslib needs transformers 5 (`kwslib.models.compact` imports `transformers.initialization`):
- training: the source folder's requirements.txt pins kwslib's dependencies (all but torch, which stays the
  container's CUDA build) to the versions installed here, so transformers is upgraded inside the job;
- serving: the archive carries `model.onnx` next to the checkpoint files and the handler prefers it, so the
  endpoint needs onnxruntime, soundfile and soxr only and leaves the container's transformers alone (the Hugging
  Face inference toolkit imports `transformers.file_utils.is_tf_available`, gone in transformers 5). An archive
  without model.onnx pins transformers 5 in its requirements: that is only as good as the toolkit's tolerance.

This module imports the SDK lazily: `kwslib.sagemaker.train_entry` imports it inside the training container,
where only `stage_model` is used.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kwslib.config import (
    SageMakerBatchConfig,
    SageMakerConfig,
    SageMakerDeployConfig,
    SageMakerTrainConfig,
)
from kwslib.sagemaker.inference import ACCEPT_JSONL, JSON_TYPE, ONNX_NAME

SDK_HINT = "pip install 'kwslib[sagemaker]'"
ENTRY_POINT = "train_entry.py"
HANDLER = "inference.py"
CODE_DIR = "code"
REQUIREMENTS = "requirements.txt"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
# SAGEMAKER_PROGRAM must name the handler: without an entry_point the SDK sends it empty, and the toolkits then look
# for a module called "" instead of code/inference.py.
SERVING_ENV = {"SAGEMAKER_PROGRAM": HANDLER, "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}
# kwslib's runtime dependencies except torch (the container's CUDA build stays), plus the exporter, so the job can
# write model.onnx. Pinned to the versions installed where the job is launched (tests check this list against
# kwslib's own requirements).
TRAIN_REQUIREMENTS = (
    "numpy",
    "soundfile",
    "soxr",
    "datasets",
    "huggingface_hub",
    "pyarrow",
    "tqdm",
    "transformers",
    "accelerate",
    "audiomentations",
    "scikit-learn",
    "jsonschema",
    "plotly",
    "evaluate",
    "silero-vad",
    "onnx",
    "onnxruntime",
    "onnxscript",
)
SERVING_REQUIREMENTS_ONNX = ("soundfile", "soxr", "onnxruntime")
SERVING_REQUIREMENTS_CHECKPOINT = ("soundfile", "soxr", "transformers", "huggingface_hub", "safetensors")
# Regexes over what `kws train` prints (kwslib.train): per-epoch "  epoch 3: validation accuracy 0.9120, loss 0.2811",
# the final "kws train: best epoch 3: validation accuracy 0.9120, test accuracy 0.9050 -> ..." and tqdm's
# "loss=0.412" postfix. Each is checked against a real training run's output in the tests.
METRIC_DEFINITIONS = (
    {"Name": "train:loss", "Regex": r"loss=([0-9.]+)"},
    {"Name": "validation:accuracy", "Regex": r"validation accuracy ([0-9.]+), loss [0-9.]+"},
    {"Name": "validation:loss", "Regex": r"validation accuracy [0-9.]+, loss ([0-9.]+)"},
    {"Name": "best:validation_accuracy", "Regex": r"best epoch \d+: validation accuracy ([0-9.]+)"},
    {"Name": "test:accuracy", "Regex": r"test accuracy ([0-9.]+)"},
)
AUDIO_CONTENT_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg"}
HYPERPARAMETERS_SET_BY_LAUNCHER = ("data", "run_dir", "model_dir", "output_data_dir")


class SageMakerError(RuntimeError):
    """An AWS call that failed, or a missing SDK. The message is one line and says what to do."""


@dataclass
class TrainingLaunch:
    job_name: str
    hyperparameters: dict
    checkpoint_s3_uri: str | None
    output_path: str
    estimator: object


@dataclass
class Deployment:
    endpoint_name: str
    model_name: str
    model_data: str
    serverless: bool


# -- the SDK and the session -----------------------------------------------------------------------------------


def import_sdk():
    """The `sagemaker` package (v2), or SageMakerError saying how to install it."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")  # we pin v2 on purpose
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)  # "Not applying SDK defaults from ..." lines
    try:
        import sagemaker
    except ImportError as err:
        raise SageMakerError(f"kws sagemaker needs the SageMaker Python SDK v2: {SDK_HINT}") from err
    if not sagemaker.__version__.startswith("2."):
        raise SageMakerError(f"sagemaker {sagemaker.__version__} is installed; kws uses SDK v2: {SDK_HINT}")
    return sagemaker


def session(cfg: SageMakerConfig):
    """A sagemaker.Session in `cfg.region` (ValueError without a region)."""
    sagemaker = import_sdk()
    import boto3

    boto_session = boto3.Session(region_name=cfg.region)
    if not boto_session.region_name:
        raise ValueError("no AWS region: pass --region (e.g. --region us-east-1) or set AWS_DEFAULT_REGION")
    with aws_errors("starting a SageMaker session"):
        return sagemaker.Session(boto_session=boto_session, default_bucket=cfg.bucket)


@contextlib.contextmanager
def aws_errors(action: str):
    """Turn botocore's and the SDK's failures into one-line SageMakerErrors."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as err:
        error = err.response.get("Error", {})
        raise SageMakerError(f"{action}: {error.get('Code', 'error')}: {error.get('Message', err)}") from err
    except BotoCoreError as err:  # NoCredentialsError, NoRegionError, EndpointConnectionError, ...
        raise SageMakerError(f"{action}: {err} (check `aws configure` / AWS_PROFILE)") from err
    except Boto3Error as err:  # S3UploadFailedError (e.g. a --bucket that does not exist)
        raise SageMakerError(f"{action}: {err}") from err


def require_role(cfg: SageMakerConfig) -> str:
    if not cfg.role:
        raise ValueError(
            "--role is required: the ARN of an IAM role SageMaker can assume, e.g. "
            "arn:aws:iam::123456789012:role/SageMakerExecution (README: SageMaker, IAM role)"
        )
    return cfg.role


def bucket_of(cfg: SageMakerConfig, sess) -> str:
    with aws_errors("finding the default bucket"):
        return cfg.bucket or sess.default_bucket()


# -- files: requirements, the serving code, model.tar.gz, the training source folder ---------------------------


def pinned(names) -> list[str]:
    """`name==<installed version>` for each distribution (unpinned when it is not installed here)."""
    out = []
    for name in names:
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(name)
    return out


def write_requirements(path: Path, names) -> Path:
    path.write_text("".join(line + "\n" for line in pinned(names)))
    return path


def copy_kwslib(dest: Path) -> Path:
    """This kwslib package (source only) into `dest/kwslib`, so a container imports the same code."""
    import kwslib

    target = dest / "kwslib"
    shutil.copytree(Path(kwslib.__file__).parent, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
    return target


def write_serving_code(model_root: Path) -> Path:
    """`<model_root>/code/`: inference.py (the handler), requirements.txt and kwslib, for the inference container."""
    code = Path(model_root) / CODE_DIR
    shutil.rmtree(code, ignore_errors=True)
    code.mkdir(parents=True)
    shutil.copy2(Path(__file__).with_name("inference.py"), code / HANDLER)
    onnx = (Path(model_root) / ONNX_NAME).is_file()
    write_requirements(code / REQUIREMENTS, SERVING_REQUIREMENTS_ONNX if onnx else SERVING_REQUIREMENTS_CHECKPOINT)
    copy_kwslib(code)
    return code


def stage_model(model: str | os.PathLike, dest: str | os.PathLike, *, onnx: bool = True, strict: bool = True) -> Path:
    """Lay out a deployable model folder at `dest`: a checkpoint folder's files (or one .onnx file as model.onnx) at
    the root, model.onnx exported from the checkpoint when `onnx` and missing, and `code/`. With `strict=False` a
    failed export only warns (the training job still delivers the checkpoint)."""
    model, dest = Path(model).expanduser(), Path(dest)
    if model.is_file():
        if model.suffix.lower() != ".onnx":
            raise ValueError(f"--model {model} is a file but not .onnx; pass a checkpoint folder or a model.onnx")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(model, dest / ONNX_NAME)
    elif model.is_dir():
        if not (model / "config.json").is_file() and not (model / ONNX_NAME).is_file():
            raise ValueError(
                f"--model {model} has no config.json or {ONNX_NAME}; pass a checkpoint folder (runs/demo/model)"
            )
        dest.mkdir(parents=True, exist_ok=True)
        for path in model.iterdir():
            if path.is_file() and not path.name.startswith("."):
                shutil.copy2(path, dest / path.name)
        if onnx and not (dest / ONNX_NAME).exists():
            _export_onnx(model, dest / ONNX_NAME, strict=strict)
    else:
        raise ValueError(f"--model {model}: no such file or folder; pass a checkpoint folder or a model.onnx")
    write_serving_code(dest)
    return dest


def _export_onnx(model_dir: Path, out: Path, *, strict: bool) -> bool:
    try:
        from kwslib.export import ExportError, export_onnx
    except ImportError as err:
        if strict:
            raise ValueError(
                f"exporting model.onnx needs the export extra: pip install 'kwslib[export]' ({err})"
            ) from err
        print(f"kws: no model.onnx ({err}); the archive serves the checkpoint with transformers")
        return False
    try:
        export_onnx(model_dir, out, verbose=False)
    except (ExportError, ValueError, RuntimeError) as err:
        if strict:
            raise
        print(f"kws: no model.onnx ({err}); the archive serves the checkpoint with transformers")
        for leftover in out.parent.glob(out.name + "*"):
            leftover.unlink()
        return False
    return True


def package(model: str | os.PathLike, out: str | os.PathLike, *, onnx: bool = True) -> Path:
    """model.tar.gz for SageMaker: the model files at the archive root plus code/ (see `stage_model`). The staged
    folder is loaded with the handler's own `model_fn` and scored once before it is archived."""
    from kwslib.sagemaker.inference import model_fn

    out = Path(out).expanduser()
    if not out.name.endswith(".tar.gz"):
        raise ValueError(f"--out {out} must end in .tar.gz (SageMaker's model archive), e.g. model.tar.gz")
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: folder {out.parent} does not exist")
    with tempfile.TemporaryDirectory(prefix="kws-package-") as tmp:
        staged = stage_model(model, Path(tmp) / "model", onnx=onnx)
        import numpy as np

        model_fn(str(staged)).predict(np.zeros(16_000, dtype=np.float32))
        tmp_out = out.with_name(f".{out.name}.tmp")
        with tarfile.open(tmp_out, "w:gz") as tar:
            for path in sorted(staged.iterdir()):
                tar.add(path, arcname=path.name, filter=_no_caches)
        os.replace(tmp_out, out)
    return out


def _no_caches(info: tarfile.TarInfo):
    return None if "__pycache__" in info.name or info.name.endswith(".pyc") else info


def stage_source_dir(dest: str | os.PathLike) -> Path:
    """The training job's source folder: train_entry.py, kwslib/ and requirements.txt."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(__file__).with_name("train_entry.py"), dest / ENTRY_POINT)
    copy_kwslib(dest)
    write_requirements(dest / REQUIREMENTS, TRAIN_REQUIREMENTS)
    return dest


# -- training ------------------------------------------------------------------------------------------------


def training_hyperparameters(passthrough: list[str], train_cfg: SageMakerTrainConfig, *, checkpointing: bool) -> dict:
    """`kws train` options given after `--` -> the job's hyperparameters, validated here with the entry point's own
    parser and configs (a bad value fails before anything is launched). Lists become comma strings, because the
    toolkit renders values with str()."""
    from kwslib.sagemaker.train_entry import DEFAULT_RUN_DIR, configs, parse_args

    argv = list(passthrough)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    try:
        given = vars(parse_args(argv, given_only=True, raise_errors=True))
        configs(parse_args(argv, raise_errors=True), train_cfg.data, DEFAULT_RUN_DIR)
    except ValueError as err:
        raise ValueError(f"training options after --: {err}") from None
    clash = [k for k in HYPERPARAMETERS_SET_BY_LAUNCHER if k in given]
    if clash:
        raise ValueError(
            f"training options after --: {', '.join('--' + k for k in clash)} are set by kws sagemaker train; "
            "use --data and --checkpoint-s3-uri instead"
        )
    hyperparameters = {k: ",".join(v) if isinstance(v, list) else v for k, v in given.items() if v is not None}
    if not train_cfg.data.startswith("s3://"):
        hyperparameters["data"] = train_cfg.data
    if checkpointing:
        hyperparameters["run_dir"] = CHECKPOINT_LOCAL_PATH
    return hyperparameters


def build_estimator(cfg: SageMakerConfig, train_cfg: SageMakerTrainConfig, hyperparameters: dict, source_dir, sess,
                    *, checkpoint_s3_uri: str | None, output_path: str, code_location: str):  # fmt: skip
    """The HuggingFace estimator for one `kws train` job."""
    from sagemaker.huggingface import HuggingFace

    distributed = train_cfg.distributed or train_cfg.instance_count > 1
    spot = {}
    if train_cfg.spot:
        spot = {"use_spot_instances": True, "max_wait": train_cfg.max_wait or 2 * train_cfg.max_run}
    return HuggingFace(
        entry_point=ENTRY_POINT,
        source_dir=str(source_dir),
        transformers_version=train_cfg.transformers_version,
        pytorch_version=train_cfg.pytorch_version,
        py_version=train_cfg.py_version,
        role=require_role(cfg),
        instance_type=train_cfg.instance_type,
        instance_count=train_cfg.instance_count,
        volume_size=train_cfg.volume_size,
        max_run=train_cfg.max_run,
        hyperparameters=hyperparameters,
        metric_definitions=[dict(m) for m in METRIC_DEFINITIONS],
        checkpoint_s3_uri=checkpoint_s3_uri,
        checkpoint_local_path=CHECKPOINT_LOCAL_PATH if checkpoint_s3_uri else None,
        distribution={"torch_distributed": {"enabled": True}} if distributed else None,
        output_path=output_path,
        code_location=code_location,
        base_job_name="kws-train",
        disable_profiler=True,
        debugger_hook_config=False,
        sagemaker_session=sess,
        **spot,
    )


def train(cfg: SageMakerConfig, train_cfg: SageMakerTrainConfig, passthrough: list[str] = ()) -> TrainingLaunch:
    """Start (and with `train_cfg.wait`, follow) a training job; returns its name and settings."""
    require_role(cfg)
    sagemaker = import_sdk()
    from sagemaker.utils import name_from_base

    checkpointing = bool(train_cfg.spot or train_cfg.checkpoint_s3_uri)
    hyperparameters = training_hyperparameters(list(passthrough), train_cfg, checkpointing=checkpointing)
    job_name = train_cfg.job_name or name_from_base("kws-train")
    sess = session(cfg)
    bucket = bucket_of(cfg, sess)
    checkpoint_s3_uri = train_cfg.checkpoint_s3_uri
    if checkpointing and not checkpoint_s3_uri:
        checkpoint_s3_uri = f"s3://{bucket}/{cfg.prefix}/checkpoints/{job_name}"
    output_path = train_cfg.output_path or f"s3://{bucket}/{cfg.prefix}/jobs"
    inputs = {"train": train_cfg.data} if train_cfg.data.startswith("s3://") else None
    with tempfile.TemporaryDirectory(prefix="kws-source-") as tmp:
        source_dir = stage_source_dir(Path(tmp) / "source")
        with aws_errors(f"starting training job {job_name}"):
            estimator = build_estimator(
                cfg, train_cfg, hyperparameters, source_dir, sess,
                checkpoint_s3_uri=checkpoint_s3_uri, output_path=output_path,
                code_location=f"s3://{bucket}/{cfg.prefix}/code",
            )  # fmt: skip
            try:
                estimator.fit(inputs, wait=train_cfg.wait, logs="All" if train_cfg.wait else "None", job_name=job_name)
            except sagemaker.exceptions.UnexpectedStatusException as err:
                raise SageMakerError(f"training job {job_name}: {err}") from err
    return TrainingLaunch(job_name, hyperparameters, checkpoint_s3_uri, output_path, estimator)


# -- serving ---------------------------------------------------------------------------------------------------


def model_data_uri(cfg: SageMakerConfig, model_data: str, sess) -> str:
    """An s3:// model.tar.gz as is; a local one uploaded to s3://<bucket>/<prefix>/models/."""
    if model_data.startswith("s3://"):
        return model_data
    with aws_errors(f"uploading {model_data}"):
        return sess.upload_data(
            str(Path(model_data).expanduser()), bucket=bucket_of(cfg, sess), key_prefix=f"{cfg.prefix}/models"
        )


def huggingface_model(cfg: SageMakerConfig, versions, model_data: str, sess, *, name: str | None = None):
    """A HuggingFaceModel on the Hugging Face inference image, running code/inference.py from the archive."""
    from sagemaker.huggingface import HuggingFaceModel

    return HuggingFaceModel(
        model_data=model_data,
        role=require_role(cfg),
        transformers_version=versions.transformers_version,
        pytorch_version=versions.pytorch_version,
        py_version=versions.py_version,
        env=dict(SERVING_ENV),
        name=name,
        sagemaker_session=sess,
    )


def deploy(cfg: SageMakerConfig, deploy_cfg: SageMakerDeployConfig) -> Deployment:
    """A real-time (instances) or serverless endpoint for a model.tar.gz."""
    require_role(cfg)
    import_sdk()
    from sagemaker.serverless import ServerlessInferenceConfig
    from sagemaker.utils import name_from_base

    sess = session(cfg)
    endpoint_name = deploy_cfg.endpoint_name or name_from_base("kws")
    model_data = model_data_uri(cfg, deploy_cfg.model_data, sess)
    model = huggingface_model(cfg, deploy_cfg, model_data, sess, name=endpoint_name)
    if deploy_cfg.serverless:
        where = {
            "serverless_inference_config": ServerlessInferenceConfig(
                memory_size_in_mb=deploy_cfg.memory, max_concurrency=deploy_cfg.concurrency
            )
        }
    else:
        where = {"initial_instance_count": deploy_cfg.instance_count, "instance_type": deploy_cfg.instance_type}
    with aws_errors(f"deploying endpoint {endpoint_name}"):
        model.deploy(endpoint_name=endpoint_name, wait=deploy_cfg.wait, **where)
    return Deployment(endpoint_name, model.name, model_data, deploy_cfg.serverless)


def invoke(cfg: SageMakerConfig, endpoint_name: str, audio: str | os.PathLike, *, top_k: int | None = None) -> dict:
    """Send one local audio file to an endpoint: the file's bytes, or JSON with base64 audio when `top_k` is given."""
    import_sdk()
    from sagemaker.deserializers import BytesDeserializer
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import IdentitySerializer

    path = Path(audio).expanduser()
    if not path.is_file():
        raise ValueError(f"{audio}: no such audio file")
    if top_k is not None and top_k < 1:
        raise ValueError(f"--top-k {top_k} must be at least 1")
    raw = path.read_bytes()
    if top_k is None:
        body, content_type = raw, AUDIO_CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    else:
        import base64

        body = json.dumps({"inputs": base64.b64encode(raw).decode("ascii"), "parameters": {"top_k": top_k}})
        content_type = JSON_TYPE
    predictor = Predictor(
        endpoint_name,
        sagemaker_session=session(cfg),
        serializer=IdentitySerializer(content_type=content_type),
        deserializer=BytesDeserializer(),
    )
    with aws_errors(f"invoking endpoint {endpoint_name}"):
        answer = predictor.predict(body, initial_args={"Accept": JSON_TYPE})
    try:
        return json.loads(answer)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SageMakerError(f"endpoint {endpoint_name} answered with non-JSON: {answer[:200]!r}") from None


def batch(cfg: SageMakerConfig, batch_cfg: SageMakerBatchConfig) -> str:
    """A batch transform job. jsonl: each input line is one request object (see kwslib.sagemaker.inference), lines
    are grouped up to --max-payload MB per request and the output has one line per input line, in order.
    audio: every object under the prefix is one request. Results: `<output>/<input object name>.out`."""
    require_role(cfg)
    import_sdk()
    from sagemaker.transformer import Transformer
    from sagemaker.utils import name_from_base

    sess = session(cfg)
    job_name = batch_cfg.job_name or name_from_base("kws-batch")
    lines = batch_cfg.input_format == "jsonl"
    settings = dict(
        instance_count=batch_cfg.instance_count,
        instance_type=batch_cfg.instance_type,
        strategy="MultiRecord" if lines else "SingleRecord",
        assemble_with="Line",
        output_path=batch_cfg.output,
        accept=ACCEPT_JSONL,
        max_payload=batch_cfg.max_payload,
    )
    with aws_errors(f"starting transform job {job_name}"):
        if batch_cfg.model_name:
            transformer = Transformer(batch_cfg.model_name, sagemaker_session=sess, env=dict(SERVING_ENV), **settings)
        else:
            model_data = model_data_uri(cfg, batch_cfg.model_data, sess)
            model = huggingface_model(cfg, batch_cfg, model_data, sess, name=job_name)
            transformer = model.transformer(env=dict(SERVING_ENV), **settings)
        transformer.transform(
            batch_cfg.input,
            data_type="S3Prefix",
            content_type=ACCEPT_JSONL if lines else "application/octet-stream",
            split_type="Line" if lines else None,
            job_name=job_name,
            wait=batch_cfg.wait,
            logs=False,
        )
    return job_name


def delete(cfg: SageMakerConfig, endpoint_name: str) -> dict:
    """Delete an endpoint, its endpoint configuration and its model(s); returns what was deleted."""
    import_sdk()
    from sagemaker.predictor import Predictor

    sess = session(cfg)
    with aws_errors(f"deleting endpoint {endpoint_name}"):
        description = sess.sagemaker_client.describe_endpoint(EndpointName=endpoint_name)
        config_name = description["EndpointConfigName"]
        config = sess.sagemaker_client.describe_endpoint_config(EndpointConfigName=config_name)
        models = [v["ModelName"] for v in config["ProductionVariants"]]
        predictor = Predictor(endpoint_name, sagemaker_session=sess)
        predictor.delete_model()
        predictor.delete_endpoint(delete_endpoint_config=True)
    return {"endpoint": endpoint_name, "endpoint_config": config_name, "models": models}
