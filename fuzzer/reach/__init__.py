"""Reach: which of each converter's and compiler's op-conversion entry points a campaign's models exercised.

Every component under test dispatches on a registry (TVM's convert maps, the TorchScript exporter's symbolic
functions, torchlib, tf2onnx's handler table, onnxruntime's kernels, the ONNX reference evaluator's ops).
`registries` reads them from the installed libraries, `excluded` states which keys no valid model can reach
and why, `extract` and `recorders` turn a case's artefacts into the keys it dispatched, `tally` adds cases
up, `linecov` measures line and branch coverage of the same packages, `replay` is the worker job that runs a
saved case through every route to measure all of it.
"""
