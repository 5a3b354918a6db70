"""The project-local work folder: worker logs and every library cache live here, never in ~."""

from __future__ import annotations

from pathlib import Path


def worker_env(work: Path) -> dict[str, str]:
    """Environment for worker processes: caches under `work`, quiet TF (the pool makes the repo importable)."""
    work = work.resolve()
    return {
        "TORCHINDUCTOR_CACHE_DIR": str(work / "inductor"),
        "KERAS_HOME": str(work / "keras"),
        "XDG_CACHE_HOME": str(work / "cache"),
        "MPLCONFIGDIR": str(work / "matplotlib"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONHASHSEED": "0",  # set iteration order in libraries' messages stays the same across workers
    }


def prepare(work: Path) -> Path:
    (work / "logs").mkdir(parents=True, exist_ok=True)
    return work
