"""Failure signatures, the unsupported classifier and the taxonomy, on real error messages.

The messages below were captured on the pinned stack by triggering each error twice, on two graphs
with different shapes and node names (ORT sessions on models whose types lack a kernel or whose
shapes clash at run time, the TVM Relax ONNX frontend on unknown ops and bad MatMuls, torch.onnx
on an op without a symbolic, XLA on an op without a kernel, tf2onnx on an op it cannot convert).
A pair must normalise to one signature; different failures must not.
"""

from __future__ import annotations

import numpy as np
import pytest

from oracles.signature import crash_signature, mismatch_signature, normalise_message, signature_text
from oracles.taxonomy import LOCATIONS, OPT_LEVEL, SYMPTOMS, location_for, symptom_for_failure
from oracles.unsupported import is_unsupported, unsupported_op

REAL: dict[str, list[tuple[str, str]]] = {
    'ort_no_kernel': [
        ('NotImplemented',
         '[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Erf(13) node with '
         "name 'n_7'"),
        ('NotImplemented',
         '[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Erf(13) node with '
         "name '/layer/Op_12'"),
    ],
    'ort_no_kernel_tan': [
        ('NotImplemented',
         '[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Tan(7) node with n'
         "ame 'n_7'"),
        ('NotImplemented',
         '[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Tan(7) node with n'
         "ame '/layer/Op_12'"),
    ],
    'ort_type_invalid': [
        ('InvalidGraph',
         "[ONNXRuntimeError] : 10 : INVALID_GRAPH : This is an invalid model. Type Error: Type 'tensor(int32"
         ")' of input parameter (x_erf_7) of operator (Erf) in node (erf_7) is invalid."),
        ('InvalidGraph',
         "[ONNXRuntimeError] : 10 : INVALID_GRAPH : This is an invalid model. Type Error: Type 'tensor(int32"
         ")' of input parameter (x_/layer/Erf_12) of operator (Erf) in node (/layer/Erf_12) is invalid."),
    ],
    'ort_broadcast': [
        ('Fail',
         "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Add node. Name:'add_3'"
         ' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/math/element_wise_ops.h:563 void '
         'onnxruntime::BroadcastIterator::Init(ptrdiff_t, ptrdiff_t) axis == 1 || axis == largest was false.'
         ' Attempting to broadcast an axis by a dimension other than 1. 3 by 5\n'),
        ('Fail',
         "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Add node. Name:'/blk/A"
         "dd_91' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/math/element_wise_ops.h:563"
         ' void onnxruntime::BroadcastIterator::Init(ptrdiff_t, ptrdiff_t) axis == 1 || axis == largest was '
         'false. Attempting to broadcast an axis by a dimension other than 1. 2 by 9\n'),
    ],
    'ort_reshape': [
        ('Fail',
         "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Reshape node. Name:'re"
         "shape_2' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/reshape_helper.h:9"
         '1 onnxruntime::ReshapeHelper::ReshapeHelper(const onnxruntime::TensorShape&, onnxruntime::TensorSh'
         'apeVector&, bool) input_shape_size == requested_shape_size was false. The input tensor cannot be r'
         'eshaped to the requested shape. Input shape:{2,6}, requested shape:{5,5}\n'),
        ('Fail',
         "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Reshape node. Name:'/m"
         "/Reshape_4' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/reshape_helper."
         'h:91 onnxruntime::ReshapeHelper::ReshapeHelper(const onnxruntime::TensorShape&, onnxruntime::Tenso'
         'rShapeVector&, bool) input_shape_size == requested_shape_size was false. The input tensor cannot b'
         'e reshaped to the requested shape. Input shape:{3,4,5}, requested shape:{7,9}\n'),
    ],
    'ort_type_bound': [
        ('Fail',
         '[ONNXRuntimeError] : 1 : FAIL : Type Error: Type parameter (T) of Optype (Add) bound to different '
         'types (tensor(float) and tensor(int64) in node (add_5).'),
        ('Fail',
         '[ONNXRuntimeError] : 1 : FAIL : Type Error: Type parameter (T) of Optype (Add) bound to different '
         'types (tensor(float) and tensor(int64) in node (mul_node_77).'),
    ],
    'onnxref_no_schema': [
        ('NotImplementedError',
         "No registered schema for operator 'FooBarOp' and domain ''. Did you recompile the sources after up"
         'dating the repository?'),
        ('NotImplementedError',
         "No registered schema for operator 'FooBarOp' and domain ''. Did you recompile the sources after up"
         'dating the repository?'),
    ],
    'tvm_unsupported': [
        ('OpNotImplemented',
         'The following operators are not supported for frontend ONNX: BlackmanWindow'),
        ('OpNotImplemented',
         'The following operators are not supported for frontend ONNX: BlackmanWindow'),
    ],
    'tvm_matmul': [
        ('ValueError',
         'Matmul requires the reduction length of the operands to be equal.  However, the LHS x_mm_1 has sha'
         'pe R.shape([2, 3]), while the RHS w_mm_1 has shape R.shape([4, 5]).  The reduction dimensions of T'
         '.int64(3) and T.int64(4) are not equal.'),
        ('ValueError',
         'Matmul requires the reduction length of the operands to be equal.  However, the LHS x__l_MatMul_4 '
         'has shape R.shape([6, 7, 8]), while the RHS w__l_MatMul_4 has shape R.shape([6, 9, 10]).  The redu'
         'ction dimensions of T.int64(8) and T.int64(9) are not equal.'),
    ],
    'tvm_match_cast': [
        ('RuntimeError',
         'Check failed: input_shape[i] == reg (3 vs. 2) : ErrorContext(fn=main, loc=param[0], param=x_r_0, a'
         'nnotation=R.Tensor((2, 3), dtype="float32"))  match_cast error,  shape[0] mismatch to specified co'
         'nstant.'),
        ('RuntimeError',
         'Check failed: input_shape[i] == reg (6 vs. 5) : ErrorContext(fn=main, loc=param[0], param=x_r_1, a'
         'nnotation=R.Tensor((5, 6, 7), dtype="float32"))  match_cast error,  shape[0] mismatch to specified'
         ' constant.'),
    ],
    'torchscript_unsupported': [
        ('UnsupportedOperatorError',
         "Exporting the operator 'aten::special_zeta' to ONNX opset version 20 is not supported"),
        ('UnsupportedOperatorError',
         "Exporting the operator 'aten::special_zeta' to ONNX opset version 20 is not supported"),
    ],
    'dynamo_unsupported': [
        ('ConversionError',
         'Failed to convert the exported program to an ONNX model. \x1b[96mThis is step 3/3\x1b[0m of export'
         'ing the model to ONNX. Next steps:\n- If there is a missing ONNX function, implement it and regist'
         'er it to the registry.\n- If there is an internal error during ONNX conversion, debug the error an'
         'd submit a PR to PyTorch.\n- Create an error report with `torch.onnx.export(..., report=True)`, an'
         'd save the ExportedProgram as a pt2 file. Create an issue in the PyTorch GitHub repository against'
         ' the \x1b[96m*onnx*\x1b[0m component. Attach the error report and the pt2 model.\n\n## Exception s'
         "ummary\n\n<class 'torch.onnx._internal.exporter._errors.DispatchError'>: No ONNX function found fo"
         "r <OpOverload(op='prims.zeta', overload='default')>. Failure message: No decompositions registered"
         " for the real-valued input\n⬆️\n<class 'torch.onnx._internal.exporter._errors.ConversionError'>: E"
         'rror when translating node %zeta : [num_users=1] = call_function[target=torch.ops.prims.zeta.defau'
         'lt](args = (%x, %add_1), kwargs = {}). See the stack trace for more information.\n\n(Refer to the '
         'full stack trace above for more information.)'),
        ('ConversionError',
         'Failed to convert the exported program to an ONNX model. \x1b[96mThis is step 3/3\x1b[0m of export'
         'ing the model to ONNX. Next steps:\n- If there is a missing ONNX function, implement it and regist'
         'er it to the registry.\n- If there is an internal error during ONNX conversion, debug the error an'
         'd submit a PR to PyTorch.\n- Create an error report with `torch.onnx.export(..., report=True)`, an'
         'd save the ExportedProgram as a pt2 file. Create an issue in the PyTorch GitHub repository against'
         ' the \x1b[96m*onnx*\x1b[0m component. Attach the error report and the pt2 model.\n\n## Exception s'
         "ummary\n\n<class 'torch.onnx._internal.exporter._errors.DispatchError'>: No ONNX function found fo"
         "r <OpOverload(op='prims.zeta', overload='default')>. Failure message: No decompositions registered"
         " for the real-valued input\n⬆️\n<class 'torch.onnx._internal.exporter._errors.ConversionError'>: E"
         'rror when translating node %zeta : [num_users=1] = call_function[target=torch.ops.prims.zeta.defau'
         'lt](args = (%x, %add_1), kwargs = {}). See the stack trace for more information.\n\n(Refer to the '
         'full stack trace above for more information.)'),
    ],
    'torch_matmul': [
        ('RuntimeError',
         'mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)'),
        ('RuntimeError',
         'mat1 and mat2 shapes cannot be multiplied (6x7 and 8x9)'),
    ],
    'xla_unsupported': [
        ('InvalidArgumentError',
         'Detected unsupported operations when trying to compile graph __inference_<lambda>_156[_XlaMustComp'
         'ile=true,config_proto=13561319589895757934,executor_type=11160318154034397263] on XLA_CPU_JIT: AsS'
         "tring (No registered 'AsString' OpKernel for XLA_CPU_JIT devices compatible with node {{node AsStr"
         'ing}}){{node AsString}}\nThe op is created at: \nFile "tmp/msgs/tf_msgs.py", line 19, in <module>'
         '\nFile "tmp/msgs/tf_msgs.py", line 5, in trial\nFile "tmp/msgs/tf_msgs.py", line 19, in <lambda>\n'
         'File "tmp/msgs/tf_msgs.py", line 18, in \nFile "tmp/msgs/tf_msgs.py", line 18, in \n\ttf2xla conve'
         'rsion failed while converting __inference_<lambda>_156[_XlaMustCompile=true,config_proto=135613195'
         '89895757934,executor_type=11160318154034397263]. Run with TF_DUMP_GRAPH_PREFIX=/path/to/dump/dir a'
         'nd --vmodule=xla_compiler=2 to obtain a dump of the compiled functions. [Op:__inference_<lambda>_1'
         '56]'),
        ('InvalidArgumentError',
         'Detected unsupported operations when trying to compile graph __inference_<lambda>_164[_XlaMustComp'
         'ile=true,config_proto=13561319589895757934,executor_type=11160318154034397263] on XLA_CPU_JIT: AsS'
         "tring (No registered 'AsString' OpKernel for XLA_CPU_JIT devices compatible with node {{node AsStr"
         'ing}}){{node AsString}}\nThe op is created at: \nFile "tmp/msgs/tf_msgs.py", line 19, in <module>'
         '\nFile "tmp/msgs/tf_msgs.py", line 5, in trial\nFile "tmp/msgs/tf_msgs.py", line 19, in <lambda>\n'
         'File "tmp/msgs/tf_msgs.py", line 18, in \nFile "tmp/msgs/tf_msgs.py", line 18, in \n\ttf2xla conve'
         'rsion failed while converting __inference_<lambda>_164[_XlaMustCompile=true,config_proto=135613195'
         '89895757934,executor_type=11160318154034397263]. Run with TF_DUMP_GRAPH_PREFIX=/path/to/dump/dir a'
         'nd --vmodule=xla_compiler=2 to obtain a dump of the compiled functions. [Op:__inference_<lambda>_1'
         '64]'),
    ],
    'tf_matmul': [
        ('InvalidArgumentError',
         '{{function_node __wrapped____MklMatMul_device_/job:localhost/replica:0/task:0/device:CPU:0}} Matri'
         'x size-incompatible: In[0]: [2,3], In[1]: [4,5] [Op:MatMul] name: '),
        ('InvalidArgumentError',
         '{{function_node __wrapped____MklMatMul_device_/job:localhost/replica:0/task:0/device:CPU:0}} Matri'
         'x size-incompatible: In[0]: [6,7], In[1]: [8,9] [Op:MatMul] name: '),
    ],
    'tf2onnx_leftover_op_check': [
        ('ValidationError',
         'No Op registered for Zeta with domain_version of 17\n\n==> Context: Bad node spec for node. Name: '
         'Zeta OpType: Zeta'),
        ('ValidationError',
         'No Op registered for Zeta with domain_version of 17\n\n==> Context: Bad node spec for node. Name: '
         'Zeta OpType: Zeta'),
    ],
    'tf2onnx_leftover_op_ort': [
        ('InvalidGraph',
         '[ONNXRuntimeError] : 10 : INVALID_GRAPH : This is an invalid model. In Node, ("Zeta", Zeta, "", -1'
         ') : ("x": tensor(float),"add:0": tensor(float),) -> ("Identity:0": tensor(float),) , Error No Op r'
         'egistered for Zeta with domain_version of 17'),
        ('InvalidGraph',
         '[ONNXRuntimeError] : 10 : INVALID_GRAPH : This is an invalid model. In Node, ("Zeta", Zeta, "", -1'
         ') : ("x": tensor(float),"add:0": tensor(float),) -> ("Identity:0": tensor(float),) , Error No Op r'
         'egistered for Zeta with domain_version of 17'),
    ],
}
TVM_TRACEBACKS = (
    'Traceback (most recent call last):\n  File "/tmp/msgs/tvm3_msgs.py", line 13, in <module>\n    fro'
    'm_onnx(m, opset=13)\n  File "/work/main/.venv/lib/python3.11/site-packages/tvm/relax/frontend/onnx'
    '/onnx_frontend.py", line 6798, in from_onnx\n    return g.from_onnx(graph, opset)\n           ^^^^'
    '^^^^^^^^^^^^^^^^^^^^^\n  File "/work/main/.venv/lib/python3.11/site-packages/tvm/relax/frontend/on'
    'nx/onnx_frontend.py", line 6340, in from_onnx\n    self._construct_nodes(graph)\n  File "/work/mai'
    'n/.venv/lib/python3.11/site-packages/tvm/relax/frontend/onnx/onnx_frontend.py", line 6543, in _con'
    'struct_nodes\n    raise err\n  File "/work/main/.venv/lib/python3.11/site-packages/tvm/relax/front'
    'end/onnx/onnx_frontend.py", line 6540, in _construct_nodes\n    op = self._convert_operator(op_nam'
    'e, inputs, attr, self.opset)\n         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n'
    '  File "/work/main/.venv/lib/python3.11/site-packages/tvm/relax/frontend/onnx/onnx_frontend.py", l'
    'ine 6642, in _convert_operator\n    sym = self.bb.normalize(sym)\n          ^^^^^^^^^^^^^^^^^^^^^^'
    '\n  File "/work/main/.venv/lib/python3.11/site-packages/tvm/relax/block_builder.py", line 673, in '
    'normalize\n    return _ffi_api.BlockBuilderNormalize(self, expr)  # type: ignore\n           ^^^^^'
    '^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  File "python/tvm_ffi/cython/function.pxi", line 1038, in '
    'tvm_ffi.core.Function.__call__\n  File "/project/src/relax/op/tensor/linear_algebra.cc", line 140,'
    ' in tvm::Type tvm::relax::InferTypeMatmul(const tvm::Call&, const BlockBuilder&)\nValueError: Matm'
    'ul requires the reduction length of the operands to be equal.  However, the LHS x_mm_1 has shape R'
    '.shape([2, 3]), while the RHS w_mm_1 has shape R.shape([4, 5]).  The reduction dimensions of T.int'
    '64(3) and T.int64(4) are not equal.\n',
    'Traceback (most recent call last):\n  File "/tmp/msgs/tvm3_msgs.py", line 13, in <module>\n    fro'
    'm_onnx(m, opset=13)\n  File "/work/main/.venv/lib/python3.11/site-packages/tvm/relax/frontend/onnx'
    '/onnx_frontend.py", line 6798, in from_onnx\n    return g.from_onnx(graph, opset)\n           ^^^^'
    '^^^^^^^^^^^^^^^^^^^^^\n  File "/work/main/.venv/lib/python3.11/site-packages/tvm/relax/frontend/on'
    'nx/onnx_frontend.py", line 6340, in from_onnx\n    self._construct_nodes(graph)\n  File "/work/mai'
    'n/.venv/lib/python3.11/site-packages/tvm/relax/frontend/onnx/onnx_frontend.py", line 6543, in _con'
    'struct_nodes\n    raise err\n  File "/work/main/.venv/lib/python3.11/site-packages/tvm/relax/front'
    'end/onnx/onnx_frontend.py", line 6540, in _construct_nodes\n    op = self._convert_operator(op_nam'
    'e, inputs, attr, self.opset)\n         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n'
    '  File "/work/main/.venv/lib/python3.11/site-packages/tvm/relax/frontend/onnx/onnx_frontend.py", l'
    'ine 6642, in _convert_operator\n    sym = self.bb.normalize(sym)\n          ^^^^^^^^^^^^^^^^^^^^^^'
    '\n  File "/work/main/.venv/lib/python3.11/site-packages/tvm/relax/block_builder.py", line 673, in '
    'normalize\n    return _ffi_api.BlockBuilderNormalize(self, expr)  # type: ignore\n           ^^^^^'
    '^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  File "python/tvm_ffi/cython/function.pxi", line 1038, in '
    'tvm_ffi.core.Function.__call__\n  File "/project/src/relax/op/tensor/linear_algebra.cc", line 140,'
    ' in tvm::Type tvm::relax::InferTypeMatmul(const tvm::Call&, const BlockBuilder&)\nValueError: Matm'
    'ul requires the reduction length of the operands to be equal.  However, the LHS x__l_MatMul_4 has '
    'shape R.shape([6, 7, 8]), while the RHS w__l_MatMul_4 has shape R.shape([6, 9, 10]).  The reductio'
    'n dimensions of T.int64(8) and T.int64(9) are not equal.\n',
)
TF2ONNX_LOG = ("Tensorflow op [Zeta: Zeta] is not supported\nUnsupported ops: Counter({'Zeta': 1})\nTensorflow op "
              "[Zeta: Zeta] is not supported\nUnsupported ops: Counter({'Zeta': 1})\n")


@pytest.mark.parametrize("key", sorted(REAL))
def test_same_failure_on_two_graphs_gives_one_signature(key: str) -> None:
    (t1, m1), (t2, m2) = REAL[key]
    assert normalise_message(m1) == normalise_message(m2)
    assert crash_signature("c", "run", "exception", t1, m1) == crash_signature("c", "run", "exception", t2, m2)


def test_most_pairs_differ_in_raw_text() -> None:
    """Guards the test data: the pairs above are a real test of normalisation, not copies."""
    assert sum(a[1] != b[1] for a, b in REAL.values()) >= 11


def test_different_failures_give_different_signatures() -> None:
    texts = {key: normalise_message(pair[0][1]) for key, pair in REAL.items()}
    assert len(set(texts.values())) == len(texts)
    sigs = {crash_signature("ort", "run", "exception", pair[0][0], pair[0][1]) for pair in REAL.values()}
    assert len(sigs) == len(REAL)


@pytest.mark.parametrize("key", sorted(REAL))
def test_normalised_text_keeps_no_graph_specific_parts(key: str) -> None:
    for _, msg in REAL[key]:
        norm = normalise_message(msg)
        for leak in ("/layer", "n_7", "mm_1", "MatMul_4", "224", "x_r_", "add_3", "onnxruntime_src", "\x1b["):
            assert leak not in norm, (leak, norm)


@pytest.mark.parametrize("key, words", [
    ("ort_no_kernel", ["NOT_IMPLEMENTED", "Could not find an implementation for Erf"]),
    ("ort_broadcast", ["running Add node", "Attempting to broadcast", "BroadcastIterator"]),
    ("tvm_unsupported", ["not supported for frontend ONNX: BlackmanWindow"]),
    ("torchscript_unsupported", ["'aten::special_zeta'"]),
    ("dynamo_unsupported", ["No ONNX function found", "prims.zeta"]),
    ("xla_unsupported", ["AsString", "XLA_CPU_JIT"]),
    ("tf_matmul", ["Matrix size-incompatible", "Op:MatMul"]),
])
def test_normalised_text_keeps_the_words_that_name_the_failure(key: str, words: list[str]) -> None:
    norm = normalise_message(REAL[key][0][1])
    for word in words:
        assert word in norm, (word, norm)


def test_torch_onnx_advice_paragraphs_are_skipped_for_the_exception_summary() -> None:
    norm = normalise_message(REAL["dynamo_unsupported"][0][1])
    assert "Next steps" not in norm and "step N/N" not in norm
    assert norm.startswith("<class 'torch.onnx._internal.exporter._errors.DispatchError'>")
    assert len(norm.splitlines()) <= 3


def test_traceback_frames_are_skipped_and_match_the_bare_message() -> None:
    a, b = TVM_TRACEBACKS
    assert normalise_message(a) == normalise_message(b)
    assert normalise_message(a) == normalise_message(REAL["tvm_matmul"][0][1])
    assert "line" not in normalise_message(a) and "onnx_frontend" not in normalise_message(a)


def test_addresses_uuids_and_temp_dirs_are_stripped() -> None:
    one = ("Segmentation fault at 0x7f3a2c001000 in /tmp/tmpk2j4x9ab/model.onnx "
           "(run 3f2b6c1e-8d4a-4b7e-9c2f-1a2b3c4d5e6f)")
    two = ("Segmentation fault at 0x55d0e0a0b120 in /tmp/tmpq8w7e6rt/model.onnx "
           "(run 0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d)")
    assert normalise_message(one) == normalise_message(two) == "Segmentation fault at <addr> in <id> (run <uuid>)"
    assert normalise_message(r"failed to open C:\Users\me\AppData\Local\Temp\x1.onnx") == "failed to open <id>"


def test_mlir_tensor_types_keep_the_dtype_and_drop_the_shape() -> None:
    a = normalise_message("'tfl.add' op operand #0 must be tensor of f32 values, but got 'tensor<2x3xi1>'")
    b = normalise_message("'tfl.add' op operand #1 must be tensor of f32 values, but got 'tensor<4x?x5xi1>'")
    assert a == b and "f32" in a and "tensor<<shape>i1>" in a


def test_only_the_first_meaningful_lines_count() -> None:
    details = ["while resolving inputs", "in graph partitioning", "at session creation", "for the CPU provider"]
    msg = REAL["ort_no_kernel"][0][1] + "\n\n" + "\n".join(details)
    norm = normalise_message(msg)
    assert len(norm.splitlines()) == 3
    assert normalise_message(msg + "\nextra tail") == norm


def test_crash_signature_shape_and_readable_text() -> None:
    exc_type, msg = REAL["tvm_matmul"][0]
    sig = crash_signature("tvm onnx frontend", "import", "exception", "tvm.error." + exc_type, msg)
    parts = sig.split("|")
    assert parts[:5] == ["crash", "tvm onnx frontend", "import", "exception", exc_type]
    assert len(parts[5]) == 16 and int(parts[5], 16) >= 0
    text = signature_text("tvm onnx frontend", "import", "exception", exc_type, msg)
    assert text.startswith("crash|tvm onnx frontend|import|exception|ValueError|Matmul requires")
    assert crash_signature("tvm onnx frontend", "compile", "exception", exc_type, msg) != sig


def test_mismatch_signature() -> None:
    sig = mismatch_signature("tvm O3 (llvm)", "run", "Softmax", "semantic")
    assert sig == "mismatch|tvm O3 (llvm)|run|Softmax|semantic"
    assert mismatch_signature("a|b", "run", "", "precision") == "mismatch|a/b|run|?|precision"


def _ort_session_error(op: str, np_dtype: type, shape: list[int], name: str) -> tuple[str, str]:
    ort = pytest.importorskip("onnxruntime")
    helper = pytest.importorskip("onnx.helper")
    from onnx import TensorProto
    elem = {np.float64: TensorProto.DOUBLE, np.float32: TensorProto.FLOAT}[np_dtype]
    x = helper.make_tensor_value_info("x_" + name, elem, shape)
    y = helper.make_tensor_value_info("y_" + name, elem, None)
    graph = helper.make_graph([helper.make_node(op, [x.name], [y.name], name=name)], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - the error is what this test is after
        return type(exc).__name__, str(exc)
    pytest.fail(f"onnxruntime accepted {op} on {np_dtype}")


def test_live_onnxruntime_missing_kernel_is_unsupported_and_dedups() -> None:
    t1, m1 = _ort_session_error("Erf", np.float64, [3, 4], "erf_1")
    t2, m2 = _ort_session_error("Erf", np.float64, [1, 8, 16, 16], "/blk/Erf_37")
    t3, m3 = _ort_session_error("Sinh", np.float64, [3, 4], "erf_1")
    assert is_unsupported(t1, m1) and is_unsupported(t3, m3)
    assert unsupported_op(m2) == "Erf" and unsupported_op(m3) == "Sinh"
    sig1, sig2, sig3 = (crash_signature("ort", "import", "unsupported", *tm) for tm in [(t1, m1), (t2, m2), (t3, m3)])
    assert m1 != m2 and sig1 == sig2
    assert sig1 != sig3


@pytest.mark.parametrize("key, op", [
    ("ort_no_kernel", "Erf"), ("ort_no_kernel_tan", "Tan"), ("onnxref_no_schema", "FooBarOp"),
    ("tvm_unsupported", "BlackmanWindow"), ("torchscript_unsupported", "aten::special_zeta"),
    ("dynamo_unsupported", "prims.zeta"), ("xla_unsupported", "AsString"),
])
def test_clean_capability_gaps_are_unsupported(key: str, op: str) -> None:
    for exc_type, msg in REAL[key]:
        assert is_unsupported(exc_type, msg)
        assert unsupported_op(msg) == op


@pytest.mark.parametrize("key", ["ort_type_invalid", "ort_broadcast", "ort_reshape", "ort_type_bound", "tvm_matmul",
                                 "tvm_match_cast", "torch_matmul", "tf_matmul", "tf2onnx_leftover_op_check",
                                 "tf2onnx_leftover_op_ort"])
def test_crashes_and_invalid_models_are_not_unsupported(key: str) -> None:
    for exc_type, msg in REAL[key]:
        assert not is_unsupported(exc_type, msg), msg


def test_tf2onnx_unsupported_ops_log_and_exception_types() -> None:
    assert is_unsupported("", TF2ONNX_LOG) and unsupported_op(TF2ONNX_LOG) == "Zeta"
    assert unsupported_op(REAL["tf2onnx_leftover_op_check"][0][1]) == "Zeta"
    assert is_unsupported("tensorflow.python.framework.errors_impl.UnimplementedError", "")
    assert is_unsupported("NotImplementedError", "")
    assert not is_unsupported("RuntimeError", "")
    assert unsupported_op(REAL["ort_broadcast"][0][1]) == ""


@pytest.mark.parametrize("kind, stage, symptom", [
    ("timeout", "run", "hang"), ("oom", "compile", "oom"), ("invalid_model", "export", "invalid_model"),
    ("exception", "check", "invalid_model"), ("exception", "import", "crash"), ("segfault", "run", "crash"),
    ("abort", "compile", "crash"),
])
def test_symptom_for_failure(kind: str, stage: str, symptom: str) -> None:
    assert symptom_for_failure(kind, stage) == symptom
    assert symptom in SYMPTOMS


@pytest.mark.parametrize("stage, component, location", [
    ("reference", "torch", "trace/load"), ("export", "torch.onnx (dynamo)", "node conversion"),
    ("check", "onnx.checker", "export/validation"), ("import", "tvm onnx frontend", "backend import"),
    ("compile", "tvm relax", "backend optimisation"), ("compile", "tvm codegen (cuda)", "codegen/runtime"),
    ("run", "ort", "codegen/runtime"), (OPT_LEVEL, "ort", "graph optimisation"),
    (OPT_LEVEL, "tvm", "backend optimisation"), (OPT_LEVEL, "sort", "backend optimisation"),
])
def test_location_for(stage: str, component: str, location: str) -> None:
    assert location_for(stage, component) == location
    assert location in LOCATIONS


def test_location_for_rejects_unknown_stage() -> None:
    with pytest.raises(ValueError):
        location_for("lowering", "tvm")
