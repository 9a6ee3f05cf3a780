"""What every benchmark records beside its numbers: the commit, the CPU and how busy the machine was."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=REPO).stdout


def git_commit() -> str:
    """HEAD, with "+dirty" when tracked files differ from it."""
    try:
        dirty = _git("status", "--porcelain", "--untracked-files=no").strip()
        return _git("rev-parse", "HEAD").strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def git_modified_files() -> list[str]:
    try:
        return [line[3:] for line in _git("status", "--porcelain", "--untracked-files=no").splitlines() if line.strip()]
    except (OSError, subprocess.CalledProcessError):
        return []


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load1() -> float:
    """The 1-minute load average: the machine is shared, so every result says how busy it was."""
    return float(Path("/proc/loadavg").read_text().split()[0])
