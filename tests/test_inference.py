"""kwslib.inference.Classifier on the trained compact model, PyTorch and onnxruntime (real sessions), and `kws predict`."""

import json
import re

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, TONE_WORDS, tone, tone_of

from kwslib.audio import AudioError
from kwslib.cli import main
from kwslib.export import export_onnx
from kwslib.inference import WINDOW_HOP_SECONDS, Classifier, ModelLoadError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
torch.set_num_threads(2)


@pytest.fixture(scope="module")
def model_dir(trained_model):
    return trained_model / "model"


@pytest.fixture(scope="module")
def onnx_path(model_dir, tmp_path_factory):
    return export_onnx(model_dir, tmp_path_factory.mktemp("onnx") / "model.onnx", verbose=False).onnx_path


@pytest.fixture(scope="module", params=["torch", "onnxruntime"])
def clf(request, model_dir, onnx_path):
    return Classifier.load(model_dir if request.param == "torch" else onnx_path)


def freq_of(word: str) -> float:
    return 200 + 50 * TONE_WORDS.index(word)  # as conftest.tone_of


def long_file(path, word="yes", at=3.2, seconds=6.0, seed=0):
    """`seconds` of low noise with `word`'s 1 s tone starting at `at` seconds."""
    x = (0.003 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)
    start = int(at * SR)
    x[start : start + SR] += tone_of(word)
    sf.write(path, x, SR, subtype="PCM_16")
    return path


# -- bad input -------------------------------------------------------------------------------------------------


def test_bad_inputs_raise_audio_error_with_a_clear_message(clf, tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.wav").write_text("this is a text file renamed to .wav\n" * 20)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x24\x08\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    cases = [
        (tmp_path / "empty.wav", "empty file (0 bytes)"),
        (tmp_path / "notes.wav", "not a readable audio file"),
        (tmp_path / "corrupt.wav", "not a readable audio file"),
        (b"\x00\x01\x02garbage bytes", "not a readable audio file"),
        (np.array([0.1, np.nan, 0.2] * 1000, dtype=np.float32), "1000 samples are NaN or Inf"),
        (tmp_path / "missing.wav", "no such file"),
    ]
    for source, message in cases:
        with pytest.raises(AudioError, match=re.escape(message)) as info:
            clf.predict(source)
        assert "\n" not in str(info.value)
    with pytest.raises(AudioError, match=r"notes\.wav: not a readable audio file .*use WAV, FLAC, OGG or MP3"):
        clf.predict(tmp_path / "notes.wav")


def test_bad_arguments_and_models(clf, tmp_path):
    with pytest.raises(ValueError, match="top_k 0 must be a whole number of at least 1"):
        clf.predict(tone_of("yes"), top_k=0)
    with pytest.raises(ValueError, match="hop_seconds 0 must be greater than 0"):
        clf.predict(tone_of("yes"), hop_seconds=0)
    (tmp_path / "model.txt").write_text("x")
    with pytest.raises(ModelLoadError, match="is a file but not .onnx"):
        Classifier.load(tmp_path / "model.txt")
    with pytest.raises(ModelLoadError, match="no such file or folder"):
        Classifier.load(tmp_path / "nope")
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(ModelLoadError, match="is not a loadable ONNX model"):
        Classifier.load(tmp_path / "broken.onnx")


# -- formats ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "word", "rate", "subtype", "stereo"),
    [
        ("stereo.wav", "yes", SR, "PCM_16", True),
        ("8k.wav", "no", 8000, "PCM_16", False),
        ("24bit.wav", "up", SR, "PCM_24", False),
        ("48k_float.wav", "yes", 48000, "FLOAT", False),
        ("clip.flac", "no", 22050, "PCM_16", True),
    ],
)
def test_formats_rates_and_channels_give_the_right_label(clf, tmp_path, name, word, rate, subtype, stereo):
    x = tone(freq_of(word), sr=rate)
    if stereo:
        x = np.stack([x, 0.5 * x], axis=1)
    sf.write(tmp_path / name, x, rate, subtype=subtype)
    prediction = clf.predict(tmp_path / name, top_k=3)
    assert prediction.label == word
    assert prediction.score == pytest.approx(clf.predict(tone_of(word)).score, abs=0.05)  # as confident as the original
    assert [t["label"] for t in prediction.top_k][0] == word and len(prediction.top_k) == 3
    assert prediction.windows is None and prediction.seconds == pytest.approx(1.0, abs=1e-3)


def test_int16_array_with_its_rate_and_short_clip(clf):
    x = (tone(freq_of("up"), sr=8000) * 32767).astype(np.int16)
    assert clf.predict(x, sample_rate=8000).label == "up"
    assert clf.predict(tone_of("no", seconds=0.6)).label == "no"  # zero-padded to the 1 s clip


# -- long inputs -----------------------------------------------------------------------------------------------


def test_long_file_best_window_covers_the_word(clf, tmp_path):
    prediction = clf.predict(long_file(tmp_path / "long.wav"))
    assert prediction.label == "yes" and prediction.seconds == pytest.approx(6.0)
    best = prediction.best_window
    # The windows are 0.25 s apart; the word spans 3.2-4.2 s: the best window is the one nearest to it.
    assert abs(best.start - 3.2) <= WINDOW_HOP_SECONDS / 2 and best.end - best.start == pytest.approx(1.0)
    assert (best.label, best.score) == (prediction.label, prediction.score)
    assert len(prediction.windows) == 21 and prediction.windows[-1].end == pytest.approx(6.0)
    far = [w for w in prediction.windows if w.end <= 3.0 or w.start >= 4.5]
    assert far and all(w.label != "yes" for w in far)
    d = prediction.to_dict()
    assert d["best_window"]["start"] == pytest.approx(best.start) and len(d["windows"]) == 21


def test_predict_batch_equals_predict_one_by_one(clf, tmp_path):
    sf.write(tmp_path / "8k.wav", tone(freq_of("no"), sr=8000), 8000)
    inputs = [
        tone_of("yes"),
        long_file(tmp_path / "long.wav", word="yes", at=1.1, seconds=3.3),
        tmp_path / "8k.wav",
        tone_of("up", seconds=0.4),
        long_file(tmp_path / "long2.wav", word="yes", at=0.0, seconds=2.0, seed=1),
    ]
    batched = clf.predict_batch(inputs, top_k=3, batch_size=4)
    for item, together in zip(inputs, batched):
        alone = clf.predict(item, top_k=3)
        assert together.label == alone.label
        assert together.score == pytest.approx(alone.score, abs=1e-5)
        assert [t["label"] for t in together.top_k] == [t["label"] for t in alone.top_k]
        assert (together.windows is None) == (alone.windows is None)
        if alone.windows:
            assert [(w.start, w.label) for w in together.windows] == [(w.start, w.label) for w in alone.windows]
    assert [p.label for p in batched[:3]] == ["yes", "yes", "no"] and batched[4].label == "yes"
    assert batched[1].windows and batched[4].windows and batched[0].windows is None


def test_torch_and_onnx_back_ends_agree(model_dir, onnx_path, tmp_path):
    torch_clf, onnx_clf = Classifier.load(model_dir), Classifier.load(onnx_path)
    batch = np.stack([tone_of(w) for w in TONE_WORDS])
    np.testing.assert_allclose(onnx_clf.probabilities(batch), torch_clf.probabilities(batch), atol=1e-5)
    long = long_file(tmp_path / "long.wav")
    assert onnx_clf.predict(long).best_window.start == torch_clf.predict(long).best_window.start
    assert (onnx_clf.labels, onnx_clf.protocol) == (torch_clf.labels, "sc12")


# -- kws predict -----------------------------------------------------------------------------------------------


@pytest.fixture
def audio_folder(tmp_path):
    root = tmp_path / "audio"
    (root / "nested").mkdir(parents=True)
    sf.write(root / "yes.wav", tone_of("yes"), SR)
    sf.write(root / "nested" / "no.flac", tone_of("no"), SR)
    sf.write(root / "no_48k.ogg", tone(freq_of("no"), sr=48000), 48000)
    (root / "broken.wav").write_bytes(b"RIFF not really a wave file")
    (root / "readme.txt").write_text("not audio, not listed")
    long_file(root / "long.wav")
    return root


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_kws_predict_json_reports_the_bad_file_and_scores_the_rest(
    backend, audio_folder, model_dir, onnx_path, tmp_path, capsys
):
    model = str(model_dir if backend == "torch" else onnx_path)
    csv_path = tmp_path / "out.csv"
    assert main(["predict", "--model", model, str(audio_folder), "--json", "--csv", str(csv_path)]) == 1
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    by_file = {r["file"].removeprefix(str(audio_folder) + "/"): r for r in rows}
    assert sorted(by_file) == ["broken.wav", "long.wav", "nested/no.flac", "no_48k.ogg", "yes.wav"]
    assert (
        set(by_file["broken.wav"]) == {"file", "error"}
        and "not a readable audio file" in by_file["broken.wav"]["error"]
    )
    assert {name: by_file[name]["label"] for name in ("yes.wav", "nested/no.flac", "no_48k.ogg", "long.wav")} == {
        "yes.wav": "yes",
        "nested/no.flac": "no",
        "no_48k.ogg": "no",
        "long.wav": "yes",
    }
    assert len(by_file["yes.wav"]["top_k"]) == 5 and set(by_file["yes.wav"]["top_k"][0]) == {"label", "score"}
    assert "windows" not in by_file["yes.wav"]
    assert abs(by_file["long.wav"]["best_window"]["start"] - 3.2) <= 0.125 and len(by_file["long.wav"]["windows"]) == 21
    assert "1 of 5 inputs could not be read" in captured.err

    lines = csv_path.read_text().splitlines()
    assert lines[0] == "file,label,score,top_k,error" and len(lines) == 6
    assert not list(tmp_path.glob(".*.tmp"))


def test_kws_predict_table_and_list_file(audio_folder, onnx_path, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(audio_folder)
    (tmp_path / "list.txt").write_text("# clips\nyes.wav\n\nnested/no.flac\n")
    assert main(["predict", "--model", str(onnx_path), f"@{tmp_path / 'list.txt'}", "--top-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["file", "label", "score", "top-2"]
    assert [line.split()[:2] for line in out[1:]] == [["yes.wav", "yes"], ["nested/no.flac", "no"]]
    assert main(["predict", "--model", str(onnx_path), "long.wav", "--hop", "0.5"]) == 0
    assert "[3.00-4.00 s of 6.00 s]" in capsys.readouterr().out  # hop 0.5: the windows start at 3.0 and 3.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--top-k", "0"], "--top-k 0 must be at least 1"),
        (["--hop", "0"], "--hop 0.0 must be greater than 0"),
        (["--model", "{tmp}/missing"], "no such file or folder"),
        (["@{tmp}/nolist.txt"], "@{tmp}/nolist.txt: no such list file"),
    ],
)
def test_kws_predict_user_mistakes_are_one_line_errors(args, message, onnx_path, tmp_path, capsys):
    sf.write(tmp_path / "a.wav", tone_of("yes"), SR)
    argv = ["predict", "--model", str(onnx_path), str(tmp_path / "a.wav")]
    argv += [a.format(tmp=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kws: error: ") and "\n" not in err and message.format(tmp=tmp_path) in err
