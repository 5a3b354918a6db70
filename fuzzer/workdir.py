"""The project-local work folder: worker logs and every library cache live here, never in ~."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def worker_env(work: Path) -> dict[str, str]:
    """Environment for worker processes: caches under `work`, quiet TF, the repo importable."""
    work = work.resolve()
    path = os.environ.get("PYTHONPATH", "")
    return {
        "TORCHINDUCTOR_CACHE_DIR": str(work / "inductor"),
        "KERAS_HOME": str(work / "keras"),
        "XDG_CACHE_HOME": str(work / "cache"),
        "MPLCONFIGDIR": str(work / "matplotlib"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": str(REPO_ROOT) + (os.pathsep + path if path else ""),
    }


def prepare(work: Path) -> Path:
    (work / "logs").mkdir(parents=True, exist_ok=True)
    return work
