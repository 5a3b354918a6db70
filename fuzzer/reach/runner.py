"""The parent side of reach replay: one isolated worker runs cases through the routes, a Tally adds them up.

A route that kills the worker (segfault, timeout, memory) counts as "crashed" for that case; the routes after
it are run again in the respawned worker, so one crash costs one route of one case. With coverage on, each
case's new arcs are on disk (under `coverage_dir`) before the worker reports the case done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fuzzer.reach.replay import ROUTES
from fuzzer.reach.tally import Tally
from fuzzer.targets.arrays import pack_dict
from generators.ir import Graph
from generators.values import Values

HANDLER = "fuzzer.reach.replay:run_reach_job"


class ReachRunner:
    def __init__(self, work: Path, coverage_dir: Path | None = None, routes: tuple[str, ...] = ROUTES,
                 stage_timeout_s: float = 120.0, memory_mb: int = 8192) -> None:
        from fuzzer.workers.pool import Limits, Worker
        from fuzzer.workers.workdir import prepare, worker_env

        self.work = prepare(work)
        self.coverage_dir = coverage_dir
        self.routes = tuple(routes)
        self.stage_timeout_s = stage_timeout_s
        self.tally = Tally()
        self.errors: list[dict[str, Any]] = []  # one per failed or crashed route: case, route, status, error
        self.crashes = 0
        self.worker = Worker(HANDLER, Limits(stage_timeout_s=stage_timeout_s, memory_mb=memory_mb),
                             self.work / "logs", worker_env(self.work), name="reach")

    def run_case(self, label: str, graph: Graph, values: Values) -> list[dict[str, Any]]:
        """Every route of one case; returns the route events (crashed routes included) and tallies them."""
        self.tally.add_graph(graph)
        blobs = {"inputs": pack_dict(values.inputs), "weights": pack_dict(values.weights)}
        pending = list(self.routes)
        events: list[dict[str, Any]] = []
        while pending:
            request = {"op": "reach", "graph": graph.wire(), "routes": pending, "label": label,
                       "work_dir": str(self.work), "stage_timeout_s": self.stage_timeout_s,
                       "coverage_dir": str(self.coverage_dir) if self.coverage_dir else None,
                       "consumers": self.coverage_dir is not None}
            done: list[dict[str, Any]] = []
            result = self.worker.run(request, blobs, lambda ev: done.append(ev.header) if ev.event == "reach" else None)
            events.extend(done)
            finished = {e["route"] for e in done}
            pending = [r for r in pending if r not in finished]
            if result.completed and result.error is not None:
                raise RuntimeError(f"reach job failed on {label}: {result.error.get('exc_type')}: "
                                   f"{result.error.get('message', '')[:300]}")
            if not result.completed and pending:
                self.crashes += 1
                crashed = pending.pop(0)
                stage = (result.last_stage or {}).get("stage", "?")
                events.append({"route": crashed, "status": "crashed", "stage": stage, "keys": {},
                               "error": f"{stage}: worker {result.crash_kind}"})
        for e in events:
            self.tally.add_route(e["route"], e["status"], e.get("keys", {}))
            if e["status"] != "ok":
                self.errors.append({"case": label, "route": e["route"], "status": e["status"],
                                    "error": e.get("error", "")})
        return events

    def registries(self, components: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
        """Each component's registry_info, built in the worker (the parent never imports TVM or the exporters)."""
        from fuzzer.reach.registries import COMPONENTS

        found: dict[str, dict[str, Any]] = {}

        def keep(ev: Any) -> None:
            if ev.event == "registry":
                found[ev.header["component"]] = {k: v for k, v in ev.header.items() if k != "component"}

        result = self.worker.run({"op": "registries", "components": list(components or COMPONENTS)}, {}, keep)
        if not result.completed or result.error is not None:
            detail = result.error.get("message", "") if result.error else result.detail
            raise RuntimeError(f"reading the registries failed: {result.crash_kind or 'error'}: {detail[:300]}")
        return found

    def summary(self) -> dict[str, Any]:
        return self.tally.summary(self.registries())

    def close(self) -> None:
        self.worker.close()

    def __enter__(self) -> ReachRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
