"""What every benchmark records beside its numbers: the commit, the CPU and how busy the machine was."""

from __future__ import annotations

from pathlib import Path

from kwslib.provenance import cpu_name, git_modified_files  # noqa: F401  (re-exported for the benchmarks)
from kwslib.provenance import git_commit as _git_commit

REPO = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """HEAD of this checkout, with "+dirty" when tracked files differ from it."""
    return _git_commit(REPO) or "unknown"


def load1() -> float:
    """The 1-minute load average: the machine is shared, so every result says how busy it was."""
    return float(Path("/proc/loadavg").read_text().split()[0])
