import json
import shutil
import subprocess
import sys

import pytest

from kwslib.cli import build_parser, main

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed: sudo apt-get install espeak-ng"
)


@pytest.mark.parametrize("command", ["synth", "data-info", "train"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: kws " + command in capsys.readouterr().out


def test_top_level_help_runs_without_importing_torch():
    code = "import sys; from kwslib.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


@needs_espeak
def test_synth_then_data_info_has_no_speaker_in_two_splits(tmp_path, capsys):
    out = tmp_path / "synth"
    assert (
        main(
            [
                "synth",
                "--out",
                str(out),
                "--speakers",
                "12",
                "--words",
                "yes,no,up,bed",
                "--noise-seconds",
                "30",
                "--quiet",
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert (
        summary["clips_written"] + summary["dropped_silent"] + summary["dropped_too_long"] + summary["dropped_failed"]
        == 48
    )

    assert main(["data-info", str(out), "--protocol", "sc12", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["speakers_in_several_splits"] == []
    assert all(info["splits"][s]["speakers"] >= 1 for s in ("train", "validation", "test"))
    assert info["splits"]["train"]["seconds"]["min"] == info["splits"]["train"]["seconds"]["max"] == 1.0
    assert info["splits"]["train"]["per_label"]["yes"] == info["splits"]["train"]["speakers"]

    assert main(["data-info", str(out), "--protocol", "sc12"]) == 0
    table = capsys.readouterr().out
    assert "speakers in more than one split: 0" in table
    assert table.splitlines()[2].split() == ["label", "train", "validation", "test"]


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    assert main(["data-info", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kws: error: --data") and "\n" not in err
    assert main(["data-info", str(tmp_path), "--protocol", "sc99"]) == 2
    assert "--protocol sc99 is unknown; use one of sc12, sc35, custom" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "s"), "--speakers", "1"]) == 2
    assert "--speakers 1 is too few" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["synth", "--words", ","])
