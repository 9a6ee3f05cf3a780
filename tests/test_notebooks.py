"""The notebooks: stored clean and thin, and all of them run headless with papermill, chained through parameters."""

import ast
import json
import math
import re
from pathlib import Path

import nbformat
import pytest
from conftest import TONE_WORDS, tone_of, write_sc_folder

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
EXPECTED = ["01_data_exploration", "02_finetune", "03_evaluate", "04_export_onnx", "05_sagemaker_deploy"]


def test_all_five_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_clean_and_thin(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown", "opens with a markdown introduction"
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert not cell.outputs and cell.execution_count is None, "stored without outputs"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0] is code[0], "the first code cell, and only it, is tagged parameters"
    for line in params[0].source.splitlines():
        assert re.fullmatch(r"\w+: (str|int|float|bool) = .+  # .+", line), f"annotated literal + comment: {line!r}"
        value = line.split(" = ", 1)[1].rsplit("  # ", 1)[0]
        ast.literal_eval(value)
    for cell in code:
        tree = ast.parse(cell.source)
        defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        assert not defs, "no def or class in a notebook: logic lives in kwslib"


@pytest.mark.slow
def test_notebooks_run_in_sequence_with_papermill(tmp_path):
    import papermill as pm

    data = write_sc_folder(tmp_path / "sc", TONE_WORDS, [f"{i:08x}" for i in range(0xD0, 0xDC)], utterances=2)
    run = tmp_path / "run"
    results = {}

    def execute(name: str, **params):
        out = tmp_path / name
        pm.execute_notebook(
            str(ROOT / "notebooks" / f"{name}.ipynb"),
            str(tmp_path / f"{name}.out.ipynb"),
            parameters={**params, "out": str(out)} if name != "02_finetune" else {**params, "out": str(run)},
            cwd=str(ROOT),
            progress_bar=False,
            kernel_name="python3",
        )
        folder = run if name == "02_finetune" else out
        results[name] = json.loads((folder / "results.json").read_text())
        return results[name]

    r1 = execute("01_data_exploration", data=str(data), examples=2, max_clips=50)
    assert r1["clips"] == {"train": 80, "validation": 5, "test": 5}
    # write_sc_folder lists only utterance 0 of speakers 0 and 1 for validation/test, so their utterance 1 trains
    assert r1["speakers_in_several_splits"] == 2 and r1["noise_files"] == 2
    assert r1["mean_rms_dbfs"] == pytest.approx(20 * math.log10(0.3 / math.sqrt(2)), abs=3.0)  # tones and noise

    r2 = execute("02_finetune", data=str(data), epochs=4, batch_size=16, lr=0.01, augment=False)
    assert r2["steps"] == 20 and r2["epochs"] == 4
    assert r2["validation_accuracy"] >= 0.8

    r3 = execute("03_evaluate", model=r2["model_dir"], data=str(data), conditions="clean,white@10dB")
    # the same model on the same clean split: exactly training's own test accuracy
    assert r3["accuracy"] == pytest.approx(r2["test_accuracy"], abs=1e-9)
    assert r3["conditions"] == 2 and Path(r3["report"]).is_file()

    # data="": parity on the exporter's noise-like probe signals. The fixture's pure tones are a poor parity probe:
    # a sinusoid leaves most mel bins near zero, where the log amplifies float32 rounding (~1e-4 on this model).
    r4 = execute("04_export_onnx", model=r2["model_dir"], data="", clips=16)
    assert r4["fp32_passed"] and r4["fp32_max_abs_logit_diff"] <= 1e-4
    assert r4["int8_passed"] and r4["int8_top1_agreement"] >= 0.99
    assert set(r4["clips_per_second"]) == {"PyTorch", "ORT fp32", "ORT int8"}

    from kwslib.audio import write_wav

    write_wav(tmp_path / "yes.wav", tone_of("yes"))
    r5 = execute("05_sagemaker_deploy", model=r2["model_dir"], clip=str(tmp_path / "yes.wav"))
    assert r5["dry_run"] and r5["served_label"] == "yes"
    assert {"model.onnx", "config.json", "code"} <= set(r5["archive_files"])
    assert r5["checkpoint_s3_uri"].endswith(r5["training_job"]) and r5["serverless"]
    assert r5["deleted"]["endpoint"] == r5["endpoint"]

    # what `make notebooks` publishes: the executed notebook as HTML, figures included
    from nbconvert import HTMLExporter

    html, _ = HTMLExporter().from_filename(str(tmp_path / "03_evaluate.out.ipynb"))
    assert "plotly" in html and "Confusion matrix" in html
