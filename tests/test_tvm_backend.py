"""The TVM Relax backend against onnxruntime and torch on small real models (no mocks)."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from fuzzer.targets import tvm_backend as tb

RNG = np.random.default_rng(7)
ONNX_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64,
              np.dtype(np.int32): TensorProto.INT32, np.dtype(np.uint8): TensorProto.UINT8,
              np.dtype(np.bool_): TensorProto.BOOL}


def onnx_model(nodes: list, inputs: dict[str, np.ndarray], outputs: dict[str, int],
               initializers: dict[str, np.ndarray] | None = None, opset: int = 17,
               initializers_as_inputs: bool = False) -> bytes:
    """Serialized model; output shapes come from ONNX shape inference."""
    inits = initializers or {}
    graph_inputs = [helper.make_tensor_value_info(n, ONNX_TYPES[a.dtype], a.shape) for n, a in inputs.items()]
    if initializers_as_inputs:
        graph_inputs += [helper.make_tensor_value_info(n, ONNX_TYPES[a.dtype], a.shape) for n, a in inits.items()]
    graph = helper.make_graph(nodes, "g", graph_inputs,
                              [helper.make_tensor_value_info(n, t, None) for n, t in outputs.items()],
                              [numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model, strict_mode=True).SerializeToString()


def ort_run(model: bytes, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, inputs)


def f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def assert_same_outputs(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
        if g.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
        else:
            np.testing.assert_array_equal(g, w)


def _mlp() -> tuple[bytes, dict[str, np.ndarray]]:
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"])]
    x = f32(2, 4)
    return onnx_model(nodes, {"x": x}, {"y": TensorProto.FLOAT}, {"w": f32(4, 3), "b": f32(3)}), {"x": x}


def _conv() -> tuple[bytes, dict[str, np.ndarray]]:
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 0, 1, 2], strides=[1, 2], group=2)]
    x = f32(1, 4, 5, 6)
    return onnx_model(nodes, {"x": x}, {"y": TensorProto.FLOAT}, {"w": f32(6, 2, 3, 3), "b": f32(6)}), {"x": x}


def _softmax() -> tuple[bytes, dict[str, np.ndarray]]:
    x = f32(2, 3, 5)
    return onnx_model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], {"x": x}, {"y": TensorProto.FLOAT}), {"x": x}


def _bool_and_int() -> tuple[bytes, dict[str, np.ndarray]]:
    """A bool output and integer division/modulo with negative operands (both conventions)."""
    a = RNG.integers(-20, 20, (3, 4)).astype(np.int64)
    b = (RNG.integers(1, 6, (3, 4)) * RNG.choice([-1, 1], (3, 4))).astype(np.int64)
    nodes = [helper.make_node("Greater", ["a", "b"], ["gt"]), helper.make_node("Div", ["a", "b"], ["q"]),
             helper.make_node("Mod", ["a", "b"], ["r"]), helper.make_node("Mod", ["a", "b"], ["fr"], fmod=1)]
    out = {"gt": TensorProto.BOOL, "q": TensorProto.INT64, "r": TensorProto.INT64, "fr": TensorProto.INT64}
    return onnx_model(nodes, {"a": a, "b": b}, out), {"a": a, "b": b}


def _rank0_and_two_outputs() -> tuple[bytes, dict[str, np.ndarray]]:
    x = f32(3, 4)
    nodes = [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
             helper.make_node("Split", ["x"], ["lo", "hi"], axis=1, num_outputs=2)]
    out = {"total": TensorProto.FLOAT, "hi": TensorProto.FLOAT, "lo": TensorProto.FLOAT}
    return onnx_model(nodes, {"x": x}, out, opset=18), {"x": x}


CASES = {"mlp": _mlp, "conv": _conv, "softmax": _softmax, "bool_int": _bool_and_int,
         "rank0_two_outputs": _rank0_and_two_outputs}


@pytest.mark.parametrize("case", sorted(CASES))
def test_onnx_outputs_match_onnxruntime_at_every_level(case: str) -> None:
    model, inputs = CASES[case]()
    want = ort_run(model, inputs)
    for level in range(4):
        compiled = tb.build(tb.import_onnx(model), level, "llvm")
        assert_same_outputs(tb.run(compiled, list(inputs.values())), want)


def test_initializers_listed_as_inputs_are_weights_not_inputs() -> None:
    """The TorchScript exporter's old layout: run still takes only the real inputs."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    x, w = f32(2, 4), f32(4, 3)
    model = onnx_model(nodes, {"x": x}, {"y": TensorProto.FLOAT}, {"w": w}, initializers_as_inputs=True)
    [got] = tb.run(tb.build(tb.import_onnx(model), 3, "llvm"), [x])
    np.testing.assert_allclose(got, x @ w, rtol=1e-5, atol=1e-6)


def test_exported_program_matches_torch() -> None:
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            h = torch.relu(self.lin(x))
            return h.sum(dim=-1), h > 0.1, h.max()

    net = Net().eval()
    x = torch.randn(2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod = tb.import_exported_program(torch.export.export(net, (x,)))
    want = [t.detach().numpy() for t in net(x)]
    for level in (0, 3):
        assert_same_outputs(tb.run(tb.build(mod, level, "llvm"), [x.numpy()]), want)


def test_time_runs_gives_one_positive_time_per_repeat() -> None:
    model, inputs = _mlp()
    times = tb.time_runs(tb.build(tb.import_onnx(model), 1, "llvm"), list(inputs.values()), repeats=4, warmup=2)
    assert len(times) == 4 and all(t > 0 for t in times)


def _fused_functions(compiled: tb.Compiled) -> list[str]:
    return [gv.name_hint for gv in compiled.lowered.get_global_vars() if gv.name_hint.startswith("fused_")]


def test_opt_level_changes_passes_fusion_and_llvm_level() -> None:
    model, _ = _mlp()
    at = {level: tb.passes_that_run(tb.import_onnx(model), level, "llvm") for level in range(4)}
    only_above_zero = [p for p in at[3] if p not in at[0]]
    assert "DeadCodeElimination" in only_above_zero and "FuseOps" in at[0]
    assert at[1] == at[2] == at[3]  # TVM 0.27's own passes do not separate O1..O3 (module docstring)
    assert len(at[3]) == len(set(at[3]))
    assert not _fused_functions(tb.build(tb.import_onnx(model), 0, "llvm"))
    assert _fused_functions(tb.build(tb.import_onnx(model), 3, "llvm"))
    assert not _fused_functions(tb.build(tb.import_onnx(model), 3, "llvm", disabled_passes=["FuseOps"]))
    assert [int(tb.make_target("llvm", level).attrs["opt-level"]) for level in range(4)] == [0, 1, 2, 3]


def test_find_guilty_pass_names_the_pass_whose_effect_is_flagged() -> None:
    """Mechanism check: 'bad' means fused kernels exist, which only FuseOps at O1+ produces."""
    model, _ = _mlp()
    seen: list[tuple[str, ...]] = []

    def fused_is_bad(compiled: tb.Compiled | None, error: BaseException | None) -> bool:
        assert compiled is not None, error
        seen.append(compiled.disabled_passes)
        return bool(_fused_functions(compiled))

    assert tb.find_guilty_pass(lambda: tb.import_onnx(model), 2, "llvm", fused_is_bad) == "FuseOps"
    assert any(len(d) > 1 for d in seen), "bisection should try halves before single passes"


def test_find_guilty_pass_is_none_when_not_an_optimisation_bug() -> None:
    model, _ = _mlp()
    assert tb.find_guilty_pass(lambda: tb.import_onnx(model), 3, "llvm", lambda c, e: False) is None
    assert tb.find_guilty_pass(lambda: tb.import_onnx(model), 3, "llvm", lambda c, e: True) is None


def test_bitshift_wider_than_the_type_changes_with_opt_level() -> None:
    """Real bug: uint8 `x << s` with s >= 8 is 0 in onnxruntime, numpy and TVM at O0/O1, but TVM
    emits a bare LLVM `shl i8` (poison for such s), so at LLVM -O2/-O3 the result is garbage."""
    x = np.array([1, 3, 5, 7, 200, 255, 17, 9], np.uint8)
    s = np.array([1, 7, 8, 9, 10, 12, 3, 8], np.uint8)
    model = onnx_model([helper.make_node("BitShift", ["x", "s"], ["y"], direction="LEFT")],
                       {"x": x, "s": s}, {"y": TensorProto.UINT8})
    [want] = ort_run(model, {"x": x, "s": s})

    def wrong(compiled: tb.Compiled | None, error: BaseException | None) -> bool:
        return compiled is None or not np.array_equal(tb.run(compiled, [x, s])[0], want)

    assert not wrong(tb.build(tb.import_onnx(model), 0, "llvm"), None)
    assert tb.find_guilty_pass(lambda: tb.import_onnx(model), 3, "llvm", wrong) == tb.LLVM_OPT_PASS


@pytest.mark.skipif(shutil.which("nvcc") is None and not tb.cuda_available(), reason="no CUDA compiler")
def test_cuda_builds_without_gpu_and_run_refuses_cleanly() -> None:
    model, inputs = _mlp()
    compiled = tb.build(tb.import_onnx(model), 3, "cuda")
    sources = tb.device_sources(compiled)
    assert sources and all("__global__" in src for src in sources)
    assert not tb.device_sources(tb.build(tb.import_onnx(model), 3, "llvm"))
    if tb.cuda_available():
        assert_same_outputs(tb.run(compiled, list(inputs.values())), ort_run(model, inputs))
    else:
        with pytest.raises(tb.DeviceUnavailable):
            tb.run(compiled, list(inputs.values()))


def test_unknown_target_and_level_are_refused() -> None:
    model, _ = _mlp()
    with pytest.raises(ValueError):
        tb.build(tb.import_onnx(model), 3, "vulkan")
    with pytest.raises(ValueError):
        tb.build(tb.import_onnx(model), 4, "llvm")
