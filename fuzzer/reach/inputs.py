"""What `parallax coverage` reads: saved cases to replay, or the reach and arcs a campaign recorded.

Accepted folders, checked in this order:
* a campaign folder (OUT/parallax.db, validated read-only): what it recorded under OUT/coverage/ when it ran
  with coverage on, else its example cases under OUT/findings/<sig>/<case>/ (one per case index);
* a corpus folder, or one entry (finding.json, graph.json, weights.npz, test_data_set_0/), every file
  checked against the entry's manifest;
* a folder of generated cases (graph.json, inputs.npz, weights.npz), or one case.
Every case is read and checked before anything runs, so a corrupt file is reported before any work and
nothing is written. Nothing here writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from fuzzer.reach.linecov import Arcs, read_arcs
from fuzzer.reach.tally import Tally
from generators.ir import Graph
from generators.values import Values

RECORDED_DIR = "coverage"  # under a campaign folder
TALLY_GLOB = "reach-*.jsonl"


class InputError(ValueError):
    """A folder that holds nothing to measure, or a corrupt file in it."""


@dataclass
class Cases:
    kind: str  # "campaign" | "corpus" | "cases" | "recorded"
    cases: list[tuple[str, Graph, Values]] = field(default_factory=list)
    recorded: Tally | None = None
    arcs: Arcs | None = None


def load(path: Path) -> Cases:
    if not path.is_dir():
        raise InputError(f"{path}: not a folder (expected a campaign folder, a corpus or generated cases)")
    if (path / "parallax.db").exists() or (path / "parallax.db").is_symlink():
        return _campaign(path)
    if (path / "finding.json").exists() or any(p.is_dir() and (p / "finding.json").exists() for p in path.iterdir()):
        return _corpus(path)
    return _generated(path)


def _campaign(out: Path) -> Cases:
    from fuzzer.campaign.store import StoreError, check_out_folder

    try:
        check_out_folder(out)
    except StoreError as e:
        raise InputError(str(e)) from None
    recorded = out / RECORDED_DIR
    if recorded.is_dir() and any(recorded.glob(TALLY_GLOB)):
        tally = read_tallies(recorded)
        arcs, _ = read_arcs(recorded)
        return Cases("recorded", recorded=tally, arcs=arcs)
    folders: dict[str, Path] = {}
    for d in sorted((out / "findings").glob("*/*")):
        if d.is_dir() and not d.name.startswith(".") and not d.parent.name.startswith("."):
            folders.setdefault(d.name, d)  # one example folder per case index
    if not folders:
        raise InputError(f"{out}: the store holds no saved cases (findings/ is empty) and no recorded coverage")
    return Cases("campaign", [_case(d, f"case {idx}") for idx, d in sorted(folders.items(), key=_by_index)])


def _by_index(item: tuple[str, Path]) -> tuple[int, str]:
    return (int(item[0]), "") if item[0].isdigit() else (1 << 62, item[0])


def _case(folder: Path, label: str) -> tuple[str, Graph, Values]:
    from fuzzer.case.files import CaseError, read_case

    try:
        graph, values = read_case(folder)
    except CaseError as e:
        raise InputError(str(e)) from None
    return label, graph, values


def _corpus(path: Path) -> Cases:
    from fuzzer.corpus.entry import EntryError, read_entry
    from fuzzer.corpus.replay import find_entries

    out = Cases("corpus")
    try:
        for folder in find_entries(path):
            _, graph, values = read_entry(folder)
            out.cases.append((folder.name, graph, values))
    except EntryError as e:
        raise InputError(str(e)) from None
    return out


def _generated(path: Path) -> Cases:
    if (path / "graph.json").exists():
        return Cases("cases", [_case(path, path.name)])
    folders = sorted(p for p in path.iterdir() if p.is_dir() and (p / "graph.json").exists())
    if not folders:
        raise InputError(f"{path}: no campaign store (parallax.db), corpus entries (finding.json) or generated "
                         "cases (graph.json) in it")
    return Cases("cases", [_case(p, p.name) for p in folders])


def read_tallies(folder: Path) -> Tally:
    """The reach a campaign recorded: one JSON tally per line (fuzzer.reach.tally.Tally.to_json of one case),
    in files named reach-*.jsonl; a last line cut short by a kill is skipped."""
    tally = Tally()
    for path in sorted(folder.glob(TALLY_GLOB)):
        for raw in path.read_bytes().split(b"\n"):
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict):
                tally.merge_json(rec)
    return tally
