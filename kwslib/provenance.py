"""What a result carries about how it was made: versions, git commit, host, time (STYLE rule 9)."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

PACKAGES = (
    "numpy",
    "torch",
    "transformers",
    "datasets",
    "accelerate",
    "scikit-learn",
    "onnxruntime",
    "audiomentations",
)
SOURCE_DIR = Path(__file__).resolve().parent


def _git(*args: str, cwd: Path = SOURCE_DIR) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=cwd, timeout=10).stdout


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """HEAD of the repository holding kwslib's source (or `cwd`), "+dirty" when tracked files differ from it;
    None for an installed copy outside a repository or without git."""
    where = Path(cwd) if cwd else SOURCE_DIR
    try:
        head = _git("rev-parse", "HEAD", cwd=where).strip()
        dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=where).strip()
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    return head + ("+dirty" if dirty else "")


def git_modified_files(cwd: str | os.PathLike | None = None) -> list[str]:
    """Tracked files that differ from HEAD ([] outside a repository)."""
    try:
        out = _git("status", "--porcelain", "--untracked-files=no", cwd=Path(cwd) if cwd else SOURCE_DIR)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return []
    return [line[3:] for line in out.splitlines() if line.strip()]


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of python and `packages` (None for one that is not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def host() -> dict:
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform()}


def utc_now() -> str:
    """The current time, ISO 8601 UTC to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def run_context(**fields) -> dict:
    """The `context` block of metrics.json: `fields` (model, data, ...) plus time, versions, commit and host."""
    from kwslib import __version__

    return {**fields, "created": utc_now(), "git_commit": git_commit(), "kwslib": __version__,
            "versions": versions(), "host": host()}  # fmt: skip
