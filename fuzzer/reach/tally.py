"""Reach added up over cases: per component, the registry keys the cases exercised (by route), the keys they
never exercised, and the graphs' own op-family, op-pair and op-sequence coverage.

A component's share is reached / (registry - excluded). Keys looked up that the registry lacks ("outside":
ops the component cannot convert) and excluded keys that were reached anyway (a rule that is wrong) are
listed too, so neither can hide. Everything here is plain JSON in and out: a tally can be saved, merged and
rebuilt without the libraries under test; only `summary` reads the registries.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from generators.ir import Graph


def graph_chains(graph: Graph) -> tuple[set[str], set[str]]:
    """Producer>consumer op-kind pairs ("conv2d>relu") and triples of one graph."""
    producer = {out: n for n in graph.nodes for out in n.outputs}
    pairs: set[str] = set()
    triples: set[str] = set()
    for n in graph.nodes:
        for a in {producer[t].name: producer[t] for t in n.inputs if t in producer}.values():
            pairs.add(f"{a.op}>{n.op}")
            for b in {producer[t].name: producer[t] for t in a.inputs if t in producer}.values():
                triples.add(f"{b.op}>{a.op}>{n.op}")
    return pairs, triples


class Tally:
    def __init__(self) -> None:
        self.cases = 0
        self.keys: dict[str, dict[str, set[str]]] = {}  # component -> route -> keys
        self.routes: dict[str, Counter] = {}  # route -> {"ok": n, "failed": n, "crashed": n}
        self.families: set[str] = set()
        self.pairs: set[str] = set()
        self.sequences: set[str] = set()

    def add_graph(self, graph: Graph) -> None:
        self.cases += 1
        self.families.update(n.op for n in graph.nodes)
        pairs, triples = graph_chains(graph)
        self.pairs |= pairs
        self.sequences |= triples

    def add_route(self, route: str, status: str, keys: dict[str, Any]) -> None:
        """One route of one case: status is "ok", "failed" or "crashed"; keys is component -> keys looked up."""
        self.routes.setdefault(route, Counter())[status] += 1
        for component, ks in keys.items():
            self.keys.setdefault(component, {}).setdefault(route, set()).update(ks)

    def reached(self, component: str) -> set[str]:
        return set().union(*self.keys.get(component, {}).values())

    # -- JSON -----------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"cases": self.cases,
                "keys": {c: {r: sorted(ks) for r, ks in sorted(by.items())} for c, by in sorted(self.keys.items())},
                "routes": {r: dict(c) for r, c in sorted(self.routes.items())},
                "families": sorted(self.families), "pairs": sorted(self.pairs), "sequences": sorted(self.sequences)}

    def merge_json(self, d: dict[str, Any]) -> None:
        self.cases += int(d.get("cases", 0))
        for c, by in d.get("keys", {}).items():
            for r, ks in by.items():
                self.keys.setdefault(c, {}).setdefault(r, set()).update(ks)
        for r, counts in d.get("routes", {}).items():
            self.routes.setdefault(r, Counter()).update(counts)
        self.families.update(d.get("families", []))
        self.pairs.update(d.get("pairs", []))
        self.sequences.update(d.get("sequences", []))

    # -- the figures ----------------------------------------------------------------------------------------
    def component_summary(self, component: str, info: dict[str, Any]) -> dict[str, Any]:
        """`info` is `fuzzer.reach.excluded.registry_info(component)` (computed where the libraries live)."""
        from fuzzer.reach.registries import TITLES

        keys = set(info["keys"])
        out_of_reach = dict(info["excluded"])
        wanted = keys - set(out_of_reach)
        reached = self.reached(component)
        hit = reached & wanted
        return {"component": component, "title": TITLES[component], "registry": len(keys),
                "registry_where": info["where"], "opset": info["opset"], "excluded": len(out_of_reach),
                "denominator": len(wanted), "reached": len(hit),
                "share": round(len(hit) / len(wanted), 4) if wanted else 0.0,
                "by_route": {r: len(ks & wanted) for r, ks in sorted(self.keys.get(component, {}).items())},
                "unreached": sorted(wanted - reached), "outside_registry": sorted(reached - keys),
                "excluded_but_reached": sorted(reached & set(out_of_reach)),
                "excluded_keys": dict(sorted(out_of_reach.items()))}

    def graph_summary(self) -> dict[str, Any]:
        from generators.ops import REGISTRY

        f = len(REGISTRY)
        return {"cases": self.cases, "op_families": len(self.families & set(REGISTRY)), "op_families_total": f,
                "op_families_missing": sorted(set(REGISTRY) - self.families),
                "op_pairs": len(self.pairs), "op_pairs_possible_at_most": f * f,
                "op_sequences": len(self.sequences), "op_sequences_possible_at_most": f * f * f}

    def summary(self, registries: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Figures for every component in `registries` (component -> registry_info), in that order."""
        from fuzzer.reach.excluded import rules_json

        return {"components": {c: self.component_summary(c, info) for c, info in registries.items()},
                "routes": {r: dict(c) for r, c in sorted(self.routes.items())},
                "graphs": self.graph_summary(), "exclusion_rules": rules_json()}
