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


def machine_context(load_before: float, *, seconds: float | None = None, packages: tuple[str, ...] = ()) -> dict:
    """The `context` block of a benchmark's JSON: commit, CPU, load before and now, run time, versions, date."""
    from datetime import datetime, timezone
    from importlib.metadata import version
    from os import cpu_count
    from platform import python_version

    out = {
        "commit": git_commit(),
        "modified_files": git_modified_files(),
        "cpu": cpu_name(),
        "cpu_count": cpu_count(),
        "load1_before": load_before,
        "load1_after": load1(),
    }
    if seconds is not None:
        out["seconds"] = round(seconds, 1)
    out["python"] = python_version()
    out.update({name.replace("-", "_"): version(name) for name in packages})
    out["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return out
