"""Every "not supported" idiom the classifier knows, from the real message of the pinned stack.

Each case builds a tiny model that makes one library decline it in its own words (TVM's torch and
ONNX frontends and its legalisation, both torch.onnx exporters, onnxruntime, the ONNX reference
evaluator, tf2onnx, XLA), catches the error and checks that it is a gap naming the right op(s),
both on `str(exc)` and on the message a worker files (`failure_from_exception`). The negatives are
real bugs and invalid models from the same libraries, some of them from corpus/: their words must
not pass for a declared limitation.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from fuzzer.targets.stages import failure_from_exception
from oracles.unsupported import UNSUPPORTED_PATTERNS, is_unsupported, unsupported_op, unsupported_ops

torch = pytest.importorskip("torch")
relax_torch = pytest.importorskip("tvm.relax.frontend.torch")
relax_onnx = pytest.importorskip("tvm.relax.frontend.onnx")
tvm = pytest.importorskip("tvm")
ort = pytest.importorskip("onnxruntime")
F = torch.nn.functional

Trigger = Callable[[], object]
CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def _raise(fn: Trigger) -> BaseException:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the error is what this test is after
        return exc
    pytest.fail("the library accepted the model")


def _tvm_from_torch(fn: Callable[..., object], *args: object, dtype: object = None, build: bool = False) -> Trigger:
    class M(torch.nn.Module):
        def forward(self, *xs: object) -> object:
            return fn(*xs)

    def go() -> object:
        mod = relax_torch.from_exported_program(torch.export.export(M(), tuple(args)))
        return tvm.compile(mod, target="llvm") if build else mod
    return go


def _onnx(nodes: list, inputs: list, outputs: list, opset: int = 18, inits: tuple = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name: str, elem: int, shape: list | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _dynamo(fn: Callable[..., object], *args: object) -> Trigger:
    class M(torch.nn.Module):
        def forward(self, *xs: object) -> object:
            return fn(*xs)
    return lambda: torch.onnx.export(M().eval(), tuple(args), dynamo=True, verbose=False)


def _torchscript(fn: Callable[..., object], *args: object) -> Trigger:
    class M(torch.nn.Module):
        def forward(self, *xs: object) -> object:
            return fn(*xs)
    return lambda: torch.onnx.export(M().eval(), tuple(args), io.BytesIO(), dynamo=False)


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray] | None = None) -> Trigger:
    def go() -> object:
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, feeds) if feeds is not None else sess
    return go


def _reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> Trigger:
    from onnx.reference import ReferenceEvaluator
    return lambda: ReferenceEvaluator(model).run(None, feeds)


def _f64(*shape: int) -> object:
    return torch.randn(*shape, dtype=torch.float64)


_RESIZE_DYNAMIC = _onnx([helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest")],
                        [_vi("x", TensorProto.FLOAT, [1, 1, 2, 2]), _vi("s", TensorProto.FLOAT, [4])],
                        [_vi("y", TensorProto.FLOAT, None)])
_WINDOWS = _onnx([helper.make_node("HammingWindow", ["n"], ["h"]), helper.make_node("BlackmanWindow", ["n"], ["w"]),
                  helper.make_node("Add", ["w", "h"], ["y"])],
                 [_vi("n", TensorProto.INT64, [])], [_vi("y", TensorProto.FLOAT, None)], opset=17)
_CUBIC_3D = _onnx([helper.make_node("Resize", ["x", "", "s"], ["y"], mode="cubic")],
                  [_vi("x", TensorProto.FLOAT, [2, 3, 4])], [_vi("y", TensorProto.FLOAT, None)],
                  inits=(helper.make_tensor("s", TensorProto.FLOAT, [3], [2.0, 2.0, 2.0]),))
_ERF_F64 = _onnx([helper.make_node("Erf", ["x"], ["y"])], [_vi("x", TensorProto.DOUBLE, [3])],
                 [_vi("y", TensorProto.DOUBLE, None)], opset=13)
_EYE_3D = _onnx([helper.make_node("EyeLike", ["x"], ["y"])], [_vi("x", TensorProto.FLOAT, [2, 2, 2])],
                [_vi("y", TensorProto.FLOAT, None)])

# (case, trigger, the ops the gap names: one gap each). Library, raise site and wording in the comment.
GAPS: list[tuple[str, Trigger, list[str]]] = [
    # TVM torch frontend, base_fx_graph_translator._check_unsupported_func_type:
    # AssertionError "Unsupported function types ['amax.default']" (the list comes from a set)
    ("tvm_torch_unsupported_function", _tvm_from_torch(lambda x: torch.amax(x, dim=1), torch.randn(3, 4)),
     ["amax"]),
    ("tvm_torch_unsupported_functions", _tvm_from_torch(lambda x: torch.amax(x, 0) + torch.amin(x, 0),
                                                        torch.randn(3, 4)), ["amax", "amin"]),
    # TVM torch frontend: ValueError "Unsupported transposed convolution dimensionality: 5"
    ("tvm_torch_conv_transpose_3d", _tvm_from_torch(
        lambda x: F.conv_transpose3d(x, torch.ones(2, 2, 3, 3, 3)), torch.randn(1, 2, 4, 4, 4)), []),
    # TVM legalisation (C++): InternalError "Check failed: (...) is false: layer_norm: only support float32
    # and float16 for now", the same for instance_norm
    ("tvm_legalize_layer_norm_f64", _tvm_from_torch(lambda x: F.layer_norm(x, (4,)), _f64(3, 4), build=True),
     ["layer_norm"]),
    ("tvm_legalize_instance_norm_f64", _tvm_from_torch(F.instance_norm, _f64(2, 3, 4), build=True),
     ["instance_norm"]),
    # TVM ONNX frontend, Resize: ValueError "Type <class 'tvm.ir.expr.Var'> for scale is currently unsupported."
    ("tvm_onnx_resize_dynamic_scales", lambda: relax_onnx.from_onnx(_RESIZE_DYNAMIC), []),
    # TVM ONNX frontend: OpNotImplemented "The following operators are not supported for frontend ONNX: A, B"
    ("tvm_onnx_unknown_ops", lambda: relax_onnx.from_onnx(_WINDOWS), ["BlackmanWindow", "HammingWindow"]),
    # dynamo exporter's torchlib (aten_scaled_dot_product_attention): AssertionError "only 4D query, key, and
    # value are supported", wrapped in a ConversionError that prints the FX node and its arguments
    ("dynamo_sdpa_5d", _dynamo(lambda x: F.scaled_dot_product_attention(x, torch.relu(x), x * 2.0),
                               torch.randn(5, 2, 3, 4, 6)), ["aten.scaled_dot_product_attention"]),
    # dynamo exporter: DispatchError "No ONNX function found for <OpOverload(op='prims.zeta', ...)>"
    ("dynamo_no_onnx_function", _dynamo(lambda x: torch.special.zeta(x, x + 2), torch.rand(3) + 1), ["prims.zeta"]),
    # TorchScript exporter: UnsupportedOperatorError "Exporting the operator 'aten::special_zeta' to ONNX opset
    # version 20 is not supported"
    ("torchscript_no_symbolic", _torchscript(lambda x: torch.special.zeta(x, x + 2), torch.rand(3) + 1),
     ["aten::special_zeta"]),
    # TorchScript exporter, symbolic_helper._unimplemented: "Unsupported: ONNX export of operator threshold,
    # non-zero threshold."
    ("torchscript_unimplemented_attribute", _torchscript(lambda x: F.threshold(x, 0.5, 0.0), torch.randn(3)),
     ["threshold"]),
    # onnxruntime: NOT_IMPLEMENTED "Could not find an implementation for Erf(13) node with name ''"
    ("ort_no_kernel", _ort(_ERF_F64), ["Erf"]),
    # onnxruntime, upsamplebase.h ScalesValidation: "'Cubic' mode only supports: * 2-D inputs ..."
    ("ort_resize_cubic_3d", _ort(_CUBIC_3D, {"x": np.ones((2, 3, 4), np.float32)}), []),
    # ONNX reference evaluator, op_eyelike.py: RuntimeError "EyeLike only accept 1D or 2D tensors not (2, 2, 2)."
    ("onnx_reference_eyelike_3d", _reference(_EYE_3D, {"x": np.ones((2, 2, 2), np.float32)}), []),
]


@pytest.fixture(scope="module")
def gap_errors() -> dict[str, BaseException]:
    return {case: _raise(trigger) for case, trigger, _ in GAPS}


@pytest.mark.parametrize("case, ops", [(c, o) for c, _, o in GAPS], ids=[c for c, _, _ in GAPS])
def test_library_declines_in_its_own_words(gap_errors: dict[str, BaseException], case: str, ops: list[str]) -> None:
    exc = gap_errors[case]
    assert is_unsupported(type(exc).__name__, str(exc)), str(exc)[:500]
    failure = failure_from_exception("import", exc)  # what a worker files: the exporter's summary, no colours
    assert failure.kind == "unsupported", failure.message[:500]
    assert unsupported_ops(failure.message) == ops
    assert unsupported_op(failure.message) == (ops[0] if ops else "")


def test_a_message_listing_several_ops_is_one_gap_per_op(gap_errors: dict[str, BaseException]) -> None:
    msg = str(gap_errors["tvm_torch_unsupported_functions"])
    assert msg.startswith("Unsupported function types [")  # the real TVM wording, whatever the set order
    assert unsupported_ops(msg) == ["amax", "amin"]
    swapped = msg.replace("amax", "@").replace("amin", "amax").replace("@", "amin")
    assert unsupported_ops(swapped) == ["amax", "amin"]


# Real bugs and invalid models: an assertion or check that is false for a valid model, never a gap.
_MATMUL_MISMATCH = _onnx([helper.make_node("MatMul", ["a", "b"], ["y"])],
                         [_vi("a", TensorProto.FLOAT, [2, 3]), _vi("b", TensorProto.FLOAT, [4, 5])],
                         [_vi("y", TensorProto.FLOAT, None)])
_ELU_F64 = _onnx([helper.make_node("Elu", ["x"], ["y"])], [_vi("x", TensorProto.DOUBLE, [3, 4])],
                 [_vi("y", TensorProto.DOUBLE, None)])
_GATHERND_INT32 = _onnx([helper.make_node("GatherND", ["x", "i"], ["y"], name="node_GatherND_7")],
                        [_vi("x", TensorProto.FLOAT, [3, 4]), _vi("i", TensorProto.INT32, [2, 1])],
                        [_vi("y", TensorProto.FLOAT, [2, 4])])
_ONEHOT_4_INPUTS = _onnx([helper.make_node("OneHot", ["i", "d", "v", "x"], ["y"], name="one_hot")],
                         [_vi(n, TensorProto.INT64, [2]) for n in "idvx"], [_vi("y", TensorProto.INT64, [2, 2])])
_ADD_BROADCAST = _onnx([helper.make_node("Add", ["a", "b"], ["y"])],
                       [_vi("a", TensorProto.FLOAT, None), _vi("b", TensorProto.FLOAT, None)],
                       [_vi("y", TensorProto.FLOAT, None)])

BUGS: list[tuple[str, Trigger]] = [
    # TVM ONNX frontend Elu/Selu build `1.0 - exp(x)` with a float32 constant: TypeError "Binary operators must
    # have the same datatype for both operands. However, R.subtract(R.const(1.0, "float32"), lv) ..."
    ("tvm_onnx_elu_f64", lambda: relax_onnx.from_onnx(_ELU_F64)),
    # TVM legalisation of group_norm on float64 (corpus/tvm-torch-frontend-crash-groupnorm-*): InternalError
    # "Check failed: (n.defined()) is false: Found null pointer node while traversing AST."
    ("tvm_group_norm_f64", _tvm_from_torch(lambda x: F.group_norm(x, 1), _f64(2, 3, 4), build=True)),
    # TVM ONNX frontend on a MatMul whose shapes do not agree: ValueError "Matmul requires the reduction length"
    ("tvm_onnx_matmul_shapes", lambda: relax_onnx.from_onnx(_MATMUL_MISMATCH)),
    # dynamo exporter on amax without dim: ValueError "Required parameter 'dim' is not provided."
    ("dynamo_amax_no_dim", _dynamo(torch.amax, torch.randn(3, 4))),
    # TorchScript exporter on roll without dims (corpus/torch-onnx-torchscript-crash-roll-*):
    # AssertionError "len(shifts)=1 != len(dims)=0"
    ("torchscript_roll_no_dims", _torchscript(lambda x: torch.roll(x, 1), torch.randn(3, 4))),
    # onnx shape inference: InferenceError "[ShapeInferenceError] ... has unsupported type: tensor(int32)" (the
    # dynamo exporter's GatherND bug in corpus/): the model is invalid, the word "unsupported" notwithstanding
    ("onnx_shape_inference_unsupported_type", lambda: onnx.checker.check_model(_GATHERND_INT32, full_check=True)),
    ("ort_invalid_graph_type", _ort(_GATHERND_INT32)),
    # onnx checker: ValidationError "Node(one_hot) with schema(::OneHot:11) has input size 4 not in range"
    ("onnx_checker_input_count", lambda: onnx.checker.check_model(_ONEHOT_4_INPUTS)),
    # onnxruntime at run time: FAIL "... axis == 1 || axis == largest was false. Attempting to broadcast ..."
    ("ort_broadcast", _ort(_ADD_BROADCAST, {"a": np.ones((3,), np.float32), "b": np.ones((5,), np.float32)})),
]


@pytest.fixture(scope="module")
def bug_errors() -> dict[str, BaseException]:
    return {case: _raise(trigger) for case, trigger in BUGS}


@pytest.mark.parametrize("case", [c for c, _ in BUGS])
def test_real_bugs_are_not_gaps(bug_errors: dict[str, BaseException], case: str) -> None:
    exc = bug_errors[case]
    assert not is_unsupported(type(exc).__name__, str(exc)), str(exc)[:500]
    assert failure_from_exception("import", exc).kind != "unsupported"


_TF_SCRIPT = r"""
import io, json, logging
import tensorflow as tf
import tf2onnx
out = {}
logs = io.StringIO()
logging.getLogger("tf2onnx").addHandler(logging.StreamHandler(logs))
from fuzzer.targets.tf_targets import raise_for_passed_through_ops
zeta = tf.function(lambda x: tf.math.zeta(x + 2.0, x + 1.0), input_signature=[tf.TensorSpec([3], tf.float32)])
tf2onnx.convert.from_function(zeta, input_signature=zeta.input_signature)
out["tf2onnx_log"] = ["", logs.getvalue()]
two = tf.function(lambda x: tf.math.zeta(x + 2.0, x + 1.0) + tf.math.igamma(x + 1.0, x + 2.0),
                  input_signature=[tf.TensorSpec([3], tf.float32)])
try:
    raise_for_passed_through_ops(tf2onnx.convert.from_function(two, input_signature=two.input_signature)[0])
except Exception as e:
    out["tf2onnx_copied"] = [type(e).__name__, str(e)]
xla = tf.function(lambda x: tf.strings.length(tf.strings.as_string(x)), jit_compile=True)
try:
    xla(tf.constant([1.0, 2.0]))
except Exception as e:
    out["xla"] = [type(e).__name__, str(e)]
try:
    tf.raw_ops.MatMul(a=tf.ones([2, 3]), b=tf.ones([4, 5]))
except Exception as e:
    out["tf_matmul"] = [type(e).__name__, str(e)]
print("JSON" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def tf_errors() -> dict[str, list[str]]:
    """TF in its own process: it and torch share a process badly, and it loads slowly (the tests that use it
    are marked slow)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", _TF_SCRIPT], capture_output=True, text=True, timeout=300, env=env,
                          cwd=CORPUS.parent)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("JSON")), None)
    assert line is not None, proc.stderr[-2000:]
    return json.loads(line[4:])


def _inductor_declines() -> object:
    """Inductor's own "not yet implemented" helper (lowering.assert_nyi, used for layout, memory_format and
    pin_memory), raised while dynamo compiles, so dynamo's real BackendCompilerFailed wraps it as it wraps
    inductor's lowering errors. No graph of ours reaches assert_nyi: inductor falls back to eager kernels."""
    def backend(gm: object, example_inputs: object) -> object:
        from torch._inductor.lowering import assert_nyi
        assert_nyi(False, "pin_memory")
        return gm
    torch._dynamo.reset()
    return torch.compile(lambda x: x * 2 + 1, backend=backend)(torch.randn(3))


@pytest.fixture(scope="module")
def inductor_error() -> BaseException:
    return _raise(_inductor_declines)


def test_a_wrapped_not_implemented_error_is_a_gap(inductor_error: BaseException) -> None:
    msg = str(inductor_error)  # "backend='backend' raised:\nNotImplementedError: inductor does not support pin_memory"
    assert type(inductor_error).__name__ == "BackendCompilerFailed"
    assert is_unsupported("BackendCompilerFailed", msg)
    assert failure_from_exception("compile", inductor_error).kind == "unsupported"


@pytest.mark.slow
def test_every_idiom_is_seen_in_a_real_message(gap_errors: dict[str, BaseException], tf_errors: dict[str, list[str]],
                                               inductor_error: BaseException) -> None:
    """No pattern in the classifier that no library on the pinned stack was seen to use."""
    messages = [failure_from_exception("import", e).message for e in gap_errors.values()]
    messages += [m for _, m in tf_errors.values()] + [str(inductor_error)]
    unseen = [p.pattern for p in UNSUPPORTED_PATTERNS if not any(p.search(m) for m in messages)]
    assert not unseen


def test_corpus_bugs_are_not_gaps() -> None:
    """corpus/ holds real bugs, judged by hand: none of their messages may read as a declared limitation."""
    crashes = 0
    for path in sorted(CORPUS.glob("*/finding.json")):
        finding = json.loads(path.read_text())["finding"]
        if finding["symptom"] in ("wrong_output", "slowdown"):
            continue
        detail = finding.get("detail", {})
        assert not is_unsupported(detail.get("exc_type", ""), detail.get("error", finding["message"])), path
        crashes += 1
    assert crashes >= 10  # the test data is there


@pytest.mark.slow
def test_tf2onnx_and_xla_decline_in_their_own_words(tf_errors: dict[str, list[str]]) -> None:
    exc_type, log = tf_errors["tf2onnx_log"]  # tf2onnx logs "Tensorflow op [Zeta: Zeta] is not supported"
    assert is_unsupported(exc_type, log) and unsupported_ops(log) == ["Zeta"]
    exc_type, msg = tf_errors["tf2onnx_copied"]  # the ops tf2onnx copied unconverted, as the tf2onnx stage says
    assert is_unsupported(exc_type, msg) and unsupported_ops(msg) == ["Igamma", "Zeta"]  # one gap per op
    exc_type, msg = tf_errors["xla"]  # XLA: "Detected unsupported operations ... No registered 'AsString' OpKernel"
    assert exc_type == "InvalidArgumentError"  # the type alone would say "bug": the words say "gap"
    assert is_unsupported(exc_type, msg) and unsupported_ops(msg) == ["AsString"]
    exc_type, msg = tf_errors["tf_matmul"]  # TF's own shape check: a bug's words, not a gap's
    assert not is_unsupported(exc_type, msg), msg
