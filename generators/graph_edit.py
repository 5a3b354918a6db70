"""Pure edits of a concrete Graph: the moves a reducer makes, each returning a new, re-validated graph.

Every edit copies its input (the caller's graph is never changed), recomputes the types that follow
from the edit with the operator specs (`reinfer`), drops what no longer reaches an output (`prune`)
and raises GraphError when the result breaks a spec's rule. Knows nothing of values, converters or
the campaign: a reducer decides which edits to try and whether the bug survived them.
"""

from __future__ import annotations

import copy
from typing import Any

from generators.ir import Graph, GraphError, Node, TensorType


def clone(graph: Graph) -> Graph:
    return copy.deepcopy(graph)


def reinfer(graph: Graph) -> Graph:
    """Every node's output types recomputed from its inputs and attributes, in topological order.

    Leaf types are the edit's input; everything downstream follows the specs (a smaller leaf makes
    smaller intermediates). Raises GraphError when some node's rule no longer holds."""
    from generators.ops import get_spec  # late: the registry imports ir

    g = clone(graph)
    for n in g.topological_nodes():
        try:
            spec = get_spec(n.op)
        except KeyError:
            raise GraphError(f"node {n.name}: unknown op {n.op!r}") from None
        outs = spec.check([g.tensors[t] for t in n.inputs], n.attrs)
        if len(outs) != len(n.outputs):
            raise GraphError(f"node {n.name}: {len(outs)} outputs by the rule, {len(n.outputs)} in the graph")
        for t, tt in zip(n.outputs, outs):
            g.tensors[t] = tt
    g.validate()
    return g


def ancestor_nodes(graph: Graph, tensors: list[str]) -> set[str]:
    """Names of the nodes whose outputs `tensors` depend on (the producers of `tensors` included)."""
    prod = graph.producers()
    seen: set[str] = set()
    todo = [t for t in tensors if t in prod]
    while todo:
        n = prod[todo.pop()]
        if n.name in seen:
            continue
        seen.add(n.name)
        todo.extend(t for t in n.inputs if t in prod)
    return seen


def descendant_tensors(graph: Graph, node: Node) -> set[str]:
    """Tensors computed from `node`'s outputs (its outputs included): rewiring to them makes a cycle."""
    cons = graph.consumers()
    seen: set[str] = set()
    todo = list(node.outputs)
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        for c in cons.get(t, []):
            todo.extend(c.outputs)
    return seen


def prune(graph: Graph) -> Graph:
    """Only what reaches an output: nodes outside the outputs' ancestry, unused leaves and tensors go."""
    keep = ancestor_nodes(graph, graph.outputs)
    nodes = [clone_node(n) for n in graph.nodes if n.name in keep]
    used = set(graph.outputs) | {t for n in nodes for t in n.inputs + n.outputs}
    return Graph({k: v for k, v in graph.tensors.items() if k in used},
                 [t for t in graph.inputs if t in used], [t for t in graph.weights if t in used],
                 nodes, _unique(graph.outputs))


def keep_ancestors(graph: Graph, outputs: list[str]) -> Graph:
    """Cut the back of the graph: `outputs` (any tensors produced by nodes) become its only outputs."""
    prod = graph.producers()
    bad = [t for t in outputs if t not in prod]
    if bad or not outputs:
        raise GraphError(f"cannot make {bad or 'nothing'} the outputs: only node outputs can be")
    g = clone(graph)
    g.outputs = _unique(outputs)
    return _checked(prune(g))


def prefix_sinks(graph: Graph, k: int) -> list[str]:
    """Outputs of the first k+1 nodes (topological order) that nothing inside that prefix consumes:
    the outputs of the graph cut right after node k (Polygraphy's bisection marks these)."""
    order = graph.topological_nodes()[:k + 1]
    consumed = {t for n in order for t in n.inputs}
    return [t for n in order for t in n.outputs if t not in consumed]


def make_leaves(graph: Graph, leaves: dict[str, str]) -> Graph:
    """Cut the front: each named intermediate tensor becomes a new graph input or weight
    (`leaves`: tensor -> "input" | "weight").

    Their producers keep a renamed, dead output and vanish when nothing else of theirs is used.
    A graph output among them stops being an output (a leaf is not a computed result)."""
    prod = graph.producers()
    bad = [t for t in leaves if t not in prod]
    if bad:
        raise GraphError(f"not node outputs: {', '.join(bad)}")
    g = clone(graph)
    for t, kind in leaves.items():
        if kind not in ("input", "weight"):
            raise ValueError(f"leaf kind must be 'input' or 'weight', not {kind!r}")
        dead = _fresh(g, f"{t}_cut")
        g.tensors[dead] = g.tensors[t]
        for n in g.nodes:
            n.outputs = [dead if o == t else o for o in n.outputs]
        (g.inputs if kind == "input" else g.weights).append(t)
    g.outputs = [t for t in g.outputs if t not in leaves]
    if not g.outputs:
        raise GraphError("cutting there leaves no output")
    return _checked(prune(g))


def remove_node(graph: Graph, name: str, substitutes: dict[str, str]) -> Graph:
    """Delete node `name`; each consumer of an output t reads `substitutes[t]` instead (an existing tensor
    of the same type that does not depend on the node). A graph output t becomes its substitute when that
    is computed by a node, else it is dropped (there must be an output left)."""
    g = clone(graph)
    node = next((n for n in g.nodes if n.name == name), None)
    if node is None:
        raise GraphError(f"no node {name!r}")
    below = descendant_tensors(g, node)
    cons = g.consumers()
    for t in node.outputs:
        needed = bool(cons.get(t)) or t in g.outputs
        sub = substitutes.get(t)
        if sub is None:
            if cons.get(t):
                raise GraphError(f"output {t} of {name} is consumed and has no substitute")
            continue
        if sub not in g.tensors or sub in below:
            raise GraphError(f"substitute {sub} is unknown or depends on {name}")
        if needed and g.tensors[sub] != g.tensors[t]:
            raise GraphError(f"substitute {sub} is {g.tensors[sub]}, {t} is {g.tensors[t]}")
    g.nodes = [n for n in g.nodes if n.name != name]
    computed = {o for n in g.nodes for o in n.outputs}
    for n in g.nodes:
        n.inputs = [substitutes.get(t, t) if t in node.outputs else t for t in n.inputs]
    outs = []
    for t in g.outputs:
        if t in node.outputs:
            sub = substitutes.get(t)
            if sub is not None and sub in computed:
                outs.append(sub)
        else:
            outs.append(t)
    g.outputs = _unique(outs)
    if not g.outputs:
        raise GraphError(f"removing {name} leaves no output")
    return _checked(prune(g))


def resize_leaves(graph: Graph, shapes: dict[str, tuple[int, ...]]) -> Graph:
    """New shapes (any rank) for some inputs/weights; every intermediate follows by the specs."""
    g = clone(graph)
    leaves = set(g.inputs) | set(g.weights)
    for t, shape in shapes.items():
        if t not in leaves:
            raise GraphError(f"{t} is not an input or weight")
        g.tensors[t] = TensorType(tuple(int(d) for d in shape), g.tensors[t].dtype)
    return reinfer(g)


def set_attrs(graph: Graph, node: str, attrs: dict[str, Any], shapes: dict[str, tuple[int, ...]] | None = None
              ) -> Graph:
    """Change some attributes of one node (and optionally some leaf shapes with them, e.g. a kernel size
    and the weight that carries it); types downstream follow by the specs."""
    g = clone(graph)
    n = next((x for x in g.nodes if x.name == node), None)
    if n is None:
        raise GraphError(f"no node {node!r}")
    n.attrs.update(copy.deepcopy(attrs))
    return resize_leaves(g, shapes or {})


def retype(graph: Graph, old: str, new: str) -> Graph:
    """Every tensor of dtype `old` becomes `new` (cast targets too); the specs decide if that is legal."""
    g = clone(graph)
    g.tensors = {k: TensorType(t.shape, new) if t.dtype == old else t for k, t in g.tensors.items()}
    for n in g.nodes:
        n.attrs = {k: (new if v == old and isinstance(v, str) else v) for k, v in n.attrs.items()}
    return reinfer(g)


def clone_node(n: Node) -> Node:
    return Node(n.name, n.op, list(n.inputs), list(n.outputs), copy.deepcopy(n.attrs))


def _checked(g: Graph) -> Graph:
    g.validate()
    return g


def _unique(names: list[str]) -> list[str]:
    out: list[str] = []
    for t in names:
        if t not in out:
            out.append(t)
    return out


def _fresh(g: Graph, base: str) -> str:
    name, i = base, 0
    while name in g.tensors:
        i += 1
        name = f"{base}{i}"
    return name
