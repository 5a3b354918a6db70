"""CI replay of the checked-in corpus: every entry's repro.py must still print REPRODUCED, run the way a
maintainer runs it: a copy of the entry outside the repo, `python -I repro.py`, an interpreter that has the
pinned stack but cannot import Parallax.

When an upstream fix lands, the entry's test fails on purpose: move the entry out of corpus/ (or pin it as
fixed) with the release that fixed it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
ENTRIES = sorted(p.parent for p in CORPUS.glob("*/finding.json"))


def make_clean_python(folder: Path) -> Path:
    """A throwaway venv whose only site-packages entry is a .pth line naming this venv's site-packages.

    A path line in a .pth adds the directory without processing the .pth files inside it, so an editable
    install of Parallax (its __editable__ finder) is not loaded: the pinned stack imports, Parallax does not.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = subprocess.run([str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "pinned_stack.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = subprocess.run([str(python), "-I", "-c", "import fuzzer"], cwd=folder, capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'fuzzer'" in probe.stderr, "Parallax is importable"
    return python


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return dict(env, TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1")


def run_clean(python: Path, entry: Path, workdir: Path, timeout_s: float = 600) -> subprocess.CompletedProcess:
    """Copy `entry` to `workdir` (outside the repo) and run its repro.py there in isolated mode."""
    copy = workdir / entry.name
    shutil.copytree(entry, copy)
    return subprocess.run([str(python), "-I", "repro.py"], cwd=copy, env=clean_env(), capture_output=True,
                          text=True, timeout=timeout_s)


def verdict_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """Non-blank stdout lines: the verdict is the second to last, its detail the last."""
    return [line for line in proc.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clean_python(tmp_path_factory.mktemp("clean_venv"))


@pytest.mark.slow
@pytest.mark.parametrize("entry", ENTRIES or [pytest.param(None, marks=pytest.mark.skip(
    reason="corpus/ has no entries yet (the reducer adds them)"))], ids=lambda p: p.name if p else "empty")
def test_corpus_entry_reproduces(entry: Path, clean_python: Path, tmp_path: Path) -> None:
    proc = run_clean(clean_python, entry, tmp_path)
    lines = verdict_lines(proc)
    assert proc.returncode == 0 and lines[-2:-1] == ["REPRODUCED"], (
        f"{entry.name}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-2000:]}")


@pytest.mark.parametrize("what", ["empty", "no_entries", "not_a_folder"])
def test_replay_of_a_folder_without_entries_is_bad_input(tmp_path: Path, what: str) -> None:
    """`parallax replay /etc` must not say "0 entries" and pass: one line on stderr, exit 2, nothing written."""
    target = tmp_path / "target"
    if what == "no_entries":
        (target / "sub").mkdir(parents=True)
        (target / "sub" / "notes.txt").write_text("not an entry")
    elif what == "empty":
        target.mkdir()
    else:
        target.write_text("a file")
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    r = subprocess.run([sys.executable, "-m", "fuzzer.cli", "replay", str(target), "--work-dir",
                        str(tmp_path / "work")], cwd=CORPUS.parent, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == ""
    assert sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before
