"""The same failure from different graphs gives one signature; different failures keep theirs.

Each pair is triggered for real on the pinned stack from two graphs that differ only around the
failure (other ops before it, other shapes, other input names, keyword arguments). The leaks these
close were real rows of a campaign: TVM prints a piece of the Relax graph (`R.subtract(R.const(1.0,
"float32"), lv2)`, `R.where(lv1, lv2, lv3)`, `R.Tensor((), ...)`), the dynamo exporter prints the
FX node and every argument of the failing call (`producer='node_relu'`, `kwargs {'scale': 0.5}`),
TVM's torch frontend lists ops in the order of a set (the hash seed of the process), and TVM names
an intrinsic inside a registry dump (`name="tirx.acos"`, which is the op, not a graph name).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from onnx import TensorProto, helper

from fuzzer.targets.stages import failure_from_exception
from oracles.signature import crash_signature, gap_signature, normalise_message
from oracles.unsupported import unsupported_ops

torch = pytest.importorskip("torch")
tvm = pytest.importorskip("tvm")
relax_torch = pytest.importorskip("tvm.relax.frontend.torch")
relax_onnx = pytest.importorskip("tvm.relax.frontend.onnx")
F = torch.nn.functional


def _filed(fn: Callable[[], object]) -> tuple[str, str, str]:
    """(exception type, message) as a worker files them, and the exception's own text."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the error is what this test is after
        f = failure_from_exception("import", exc)
        return f.exc_type, f.message, str(exc)
    pytest.fail("the library accepted the model")


def _module(fn: Callable[..., object]) -> torch.nn.Module:
    class M(torch.nn.Module):
        def forward(self, *xs: object) -> object:
            return fn(*xs)
    return M().eval()


def _tvm_torch(fn: Callable[..., object], *args: object, build: bool = False) -> Callable[[], object]:
    def go() -> object:
        mod = relax_torch.from_exported_program(torch.export.export(_module(fn), tuple(args)))
        return tvm.compile(mod, target="llvm") if build else mod
    return go


def _dynamo(fn: Callable[..., object], *args: object) -> Callable[[], object]:
    return lambda: torch.onnx.export(_module(fn), tuple(args), dynamo=True, verbose=False)


def _tvm_onnx(ops: list[str], dtype: int, shape: list[int], name: str) -> Callable[[], object]:
    nodes, cur = [], name
    for i, op in enumerate(ops):
        nodes.append(helper.make_node(op, [cur], [f"{op.lower()}_out_{i}"], name=f"/block/{op}_{i}"))
        cur = nodes[-1].output[0]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(name, dtype, shape)],
                              [helper.make_tensor_value_info(cur, dtype, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return lambda: relax_onnx.from_onnx(model)


def _tvm_matmul(a: str, b: str, sa: list[int], sb: list[int]) -> Callable[[], object]:
    f = TensorProto.FLOAT
    graph = helper.make_graph([helper.make_node("MatMul", [a, b], ["y"])], "g",
                              [helper.make_tensor_value_info(a, f, sa), helper.make_tensor_value_info(b, f, sb)],
                              [helper.make_tensor_value_info("y", f, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return lambda: relax_onnx.from_onnx(model)


f64 = TensorProto.DOUBLE
# Same failure, graphs that differ around it. Each list holds two or three triggers of one bug.
SAME: dict[str, list[Callable[[], object]]] = {
    # TVM ONNX frontend: Elu/Selu build `1.0 - exp(x)` with a float32 constant (R.subtract ... lv / lv2)
    "tvm_onnx_elu_const_dtype": [_tvm_onnx(["Elu"], f64, [3, 4], "x"),
                                 _tvm_onnx(["Abs", "Neg", "Elu"], f64, [2, 5, 6], "input_7"),
                                 _tvm_onnx(["Selu"], f64, [], "scalar")],
    # TVM torch frontend: where() on float and int64 branches (R.where(lv, xs_0, xs_1) / R.where(lv1, lv2, lv3))
    "tvm_torch_where_dtype": [
        _tvm_torch(lambda x, y: torch.where(x > 0, x, y), torch.randn(3, 4), torch.ones(3, 4, dtype=torch.int64)),
        _tvm_torch(lambda x, y: torch.where(torch.relu(x) > 1, torch.sin(x), y + 1), torch.randn(2, 5, 6),
                   torch.ones(2, 5, 6, dtype=torch.int64))],
    # TVM ONNX frontend: a MatMul whose reduction lengths differ ("the LHS a has shape", "the LHS lhs has shape")
    "tvm_onnx_matmul_names": [_tvm_matmul("a", "b", [2, 3], [4, 5]),
                              _tvm_matmul("lhs", "weight", [6, 7, 8], [6, 9, 2])],
    # dynamo exporter, torchlib sdpa: the summary prints every argument (names, producers, dtypes, kwargs)
    "dynamo_sdpa_rank": [
        _dynamo(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), *(torch.randn(2, 2, 3, 4, 4),) * 3),
        _dynamo(lambda x: F.scaled_dot_product_attention(x, torch.relu(x), x * 2.0), torch.randn(5, 2, 3, 4, 6)),
        _dynamo(lambda x, y: F.scaled_dot_product_attention(torch.sigmoid(x), y, y, scale=0.5) + 1,
                torch.randn(3, 5), torch.randn(3, 5))],
    # dynamo exporter, torchlib amax without dim: "Args: (SymbolicTensor(name='relu', ..., producer='node_relu'),)"
    "dynamo_amax_no_dim": [_dynamo(torch.amax, torch.randn(3, 4)),
                           _dynamo(lambda x: torch.amax(torch.relu(x)) * 2, torch.randn(2, 5, 6))],
}
# Different failures that must keep apart: another op, another function, other wording.
DIFFERENT = [
    ("tvm_onnx_elu_const_dtype", "tvm_torch_where_dtype"),  # same wording, R.subtract vs R.where
    ("dynamo_amax_no_dim", "dynamo_amin_no_dim"),  # same wording, another torchlib function
    ("dynamo_sdpa_rank", "dynamo_amax_no_dim"),
    ("tvm_codegen_acos_f16", "tvm_codegen_asin_f16"),  # the intrinsic is the op
]
OTHERS: dict[str, Callable[[], object]] = {
    # TVM LLVM codegen: no float16 acos / asin intrinsic (corpus/tvm-codegen-crash-acos-*)
    "tvm_codegen_acos_f16": _tvm_torch(torch.acos, torch.rand(3, 4).half(), build=True),
    "dynamo_amin_no_dim": _dynamo(torch.amin, torch.randn(3, 4)),
    "tvm_codegen_asin_f16": _tvm_torch(torch.asin, torch.rand(3, 4).half(), build=True),
}


@pytest.fixture(scope="module")
def filed() -> dict[str, list[tuple[str, str, str]]]:
    out = {key: [_filed(t) for t in triggers] for key, triggers in SAME.items()}
    out.update({key: [_filed(t)] for key, t in OTHERS.items()})
    return out


@pytest.mark.parametrize("key", sorted(SAME))
def test_same_failure_from_other_graphs_is_one_signature(filed: dict[str, list[tuple[str, str, str]]],
                                                         key: str) -> None:
    msgs = filed[key]
    assert len({m for _, m, _ in msgs}) == len(msgs), "the raw messages must differ, or the pair tests nothing"
    assert len({normalise_message(m) for _, m, _ in msgs}) == 1, [normalise_message(m) for _, m, _ in msgs]
    assert len({crash_signature("c", "import", "exception", t, m) for t, m, _ in msgs}) == 1
    # the exception's own text (colours, the exporter's advice before and after its summary) says the same
    assert {normalise_message(raw) for _, _, raw in msgs} == {normalise_message(msgs[0][1])}


@pytest.mark.parametrize("a, b", DIFFERENT)
def test_different_failures_keep_apart(filed: dict[str, list[tuple[str, str, str]]], a: str, b: str) -> None:
    (ta, ma, _), (tb, mb, _) = filed[a][0], filed[b][0]
    assert normalise_message(ma) != normalise_message(mb)
    assert crash_signature("c", "import", "exception", ta, ma) != crash_signature("c", "import", "exception", tb, mb)


def test_printed_graph_pieces_are_gone(filed: dict[str, list[tuple[str, str, str]]]) -> None:
    elu = normalise_message(filed["tvm_onnx_elu_const_dtype"][0][1])
    assert 'R.subtract(R.const(N, "float32"), <id>)' in elu and 'R.Tensor(<shape>, dtype=<dtype>)' in elu
    sdpa = normalise_message(filed["dynamo_sdpa_rank"][1][1])
    assert "node_relu" not in sdpa and "SymbolicTensor" not in sdpa and "<args>" in sdpa
    assert sdpa.startswith("<class 'AssertionError'>: only 4D query, key, and value are supported")
    assert "tirx.acos" in normalise_message(filed["tvm_codegen_acos_f16"][0][1])


_ORDER_SCRIPT = """
import torch
from tvm.relax.frontend.torch import from_exported_program
class M(torch.nn.Module):
    def forward(self, x):
        return torch.amax(x, 0) + torch.amin(x, 0)
try:
    from_exported_program(torch.export.export(M(), (torch.randn(3, 4),)))
except AssertionError as e:
    print("MSG" + str(e))
"""


def _seed_order(seed: int) -> str:
    """The order a set of these two names iterates in under one hash seed (what TVM's list inherits)."""
    code = "print(list({'amax.default', 'amin.default'}))"
    env = dict(os.environ, PYTHONHASHSEED=str(seed))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout


@pytest.mark.slow
def test_op_lists_printed_from_a_set_give_one_signature_whatever_the_hash_seed() -> None:
    orders: dict[str, int] = {}
    for seed in range(64):
        orders.setdefault(_seed_order(seed), seed)
        if len(orders) == 2:
            break
    assert len(orders) == 2
    msgs = []
    for seed in orders.values():
        env = dict(os.environ, PYTHONHASHSEED=str(seed), OMP_NUM_THREADS="1")
        out = subprocess.run([sys.executable, "-c", _ORDER_SCRIPT], capture_output=True, text=True, env=env,
                             timeout=300).stdout
        msgs.append(next(line[3:] for line in out.splitlines() if line.startswith("MSG")))
    assert msgs[0] != msgs[1], msgs  # TVM really printed the two orders
    assert normalise_message(msgs[0]) == normalise_message(msgs[1])
    assert unsupported_ops(msgs[0]) == unsupported_ops(msgs[1]) == ["amax", "amin"]


def test_one_gap_per_declined_op_alone_or_in_a_list() -> None:
    _, alone, _ = _filed(_tvm_torch(lambda x: torch.amax(x, dim=1), torch.randn(3, 4)))
    _, both, _ = _filed(_tvm_torch(lambda x: torch.amin(torch.relu(x), 0) + torch.amax(x, 0), torch.randn(2, 5)))
    _, other, _ = _filed(_tvm_torch(lambda x: torch.amin(x, dim=1), torch.randn(3, 4)))
    sig = {(name, op): gap_signature("tvm torch frontend", "import", "AssertionError", msg, op)
           for name, msg in (("alone", alone), ("both", both), ("other", other)) for op in unsupported_ops(msg)}
    assert set(sig) == {("alone", "amax"), ("both", "amax"), ("both", "amin"), ("other", "amin")}
    assert sig["alone", "amax"] == sig["both", "amax"] and sig["other", "amin"] == sig["both", "amin"]
    assert sig["both", "amax"] != sig["both", "amin"]
    assert gap_signature("tvm torch frontend", "compile", "AssertionError", alone, "amax") != sig["alone", "amax"]


def test_pathological_dumps_stay_linear() -> None:
    """Thousands of unclosed brackets (a truncated dump) must not make normalisation quadratic: before the
    span bounds, the third message below took over a minute."""
    messages = ["TypeError: " + " ".join(f"R.add(lv{i}, R.multiply(x{i}, y))" for i in range(3000)),
                "ir.Op(" + "a" * 50000 + " args (" * 2000, "(" * 30000 + "R.add(" * 10000,
                "R.add(" * 600 + "x" + ")" * 600]
    t0 = time.process_time()
    for m in messages:
        normalise_message(m)
    assert time.process_time() - t0 < 10


def test_llvm_comparison_predicates_are_one_lowering_bug() -> None:
    """Two rows of a real campaign (tvm 0.27, bool inputs through Equal and through NotEqual): TVM lowers a bool
    comparison to an fcmp, which LLVM's verifier rejects; the predicate names the op, not the fault."""
    head = "InternalError: LLVM module verification failed with the following errors: \n"
    equal = head + "Invalid operand types for FCmp instruction\n  %22 = fcmp oeq i1 %14, %21, !dbg !18\n"
    not_equal = head + "Invalid operand types for FCmp instruction\n  %13 = fcmp one i1 %9, %12, !dbg !11\n"
    assert normalise_message(equal) == normalise_message(not_equal)
    other = head + "Invalid operand types for ICmp instruction\n  %5 = icmp eq float %3, %4\n"
    assert normalise_message(other) != normalise_message(equal)


def test_which_dtypes_clashed_is_not_part_of_the_identity() -> None:
    """Real TVM 0.27 messages from one campaign: the ONNX frontend's Elu builds R.const(1.0, "float32") whatever
    the input's dtype, so float64 and float16 inputs gave two rows of one bug."""
    head = "TypeError: Binary operators must have the same datatype for both operands.  However, "
    f64 = head + ('R.subtract(R.const(1.0, "float32"), lv35) uses datatype T.float32 on the LHS (Type of '
                  'R.Tensor((), dtype="float32")), and datatype T.float64 on the RHS (Type of R.Tensor((3, 4), '
                  'dtype="float64")).')
    f16 = f64.replace("float64", "float16").replace("lv35", "lv8")
    assert normalise_message(f64) == normalise_message(f16)
    add = f64.replace("R.subtract(", "R.add(")
    assert normalise_message(add) != normalise_message(f64)  # another op: another bug
    assert "float64" in normalise_message("Check failed: only support float32 and float16, got float64")
