"""Failure signatures for dedup: the same bug on another graph must give the same signature.

An error message carries the graph it came from: node and tensor names ('onnx::Add_12',
"/layer/Conv_3", x_mm_1, %x5), shapes ([1, 3, 224], (2,3), 2x3, {2,6}), sizes, addresses, file
paths with line numbers, temp dirs and uuids. `normalise_message` strips those and keeps the words
that name the failure (the library's own wording, op types, dtypes), from the first few meaningful
lines; traceback frames and converter boilerplate are skipped. Case is kept: op types are
case-sensitive (`Erf` the ONNX op, `erf` a torch function).

Some libraries print a piece of the graph itself, and every graph prints differently. Those dumps
are reduced to their skeleton: a printed Relax call keeps its op and constants but not its
variables (`R.subtract(R.const(1.0, "float32"), lv2)` -> `R.subtract(R.const(N, "float32"), <id>)`),
a Relax tensor type keeps its dtype but not its shape, and the argument lists that the torch.onnx
exporter and torch.fx print (`args = (%x, %relu)`, `with args '[SymbolicTensor(name=..., producer=...)]'`)
become `<args>`. Lists printed from a set (TVM's "Unsupported function types ['amin.default',
'amax.default']") are sorted, since their order follows the process's hash seed.
"""

from __future__ import annotations

import hashlib
import re

from oracles.unsupported import mask_op_lists

MAX_LINES = 3
_MAX_CHARS = 100_000

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_FRAME = re.compile(r'^\s*File "[^"]*", line \d+')  # Python frames, also TF's "The op is created at:" list
_NATIVE_FRAME = re.compile(r"^\s*(?:\d+:\s|#\d+\s|\[bt\]|Stack trace:|Traceback \(most recent call last\):)")
_CHAIN = re.compile(r"^(?:During handling of the above exception|The above exception was the direct cause)")
# torch.onnx's ConversionError puts the same three paragraphs of advice before the real cause.
_SUMMARY_MARK = "## Exception summary"
_SUMMARY_END = "(Refer to the full stack trace"

_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b")
_WIN_PATH = re.compile(r"\b[A-Za-z]:\\[^\s'\"()]*")
# Shapes in the spellings the libraries use: [1, 3], (2, 3), (5,), {2,6}, 2x3; [s0, 3] symbolic.
_SHAPE_ITEM = r"\s*(?:-?\d+|\?|None|[A-Za-z]\d*)\s*"
_BRACKET_SHAPE = re.compile(rf"\[(?:{_SHAPE_ITEM}(?:,{_SHAPE_ITEM})*,?)?\s*\]")
_PAREN_SHAPE = re.compile(r"\(\s*-?\d+\s*,(?:\s*-?\d+\s*,)*(?:\s*-?\d+\s*)?\)")
_BRACE_SHAPE = re.compile(r"\{\s*(?:-?\d+\s*(?:,\s*-?\d+\s*)*)?\}")
_X_SHAPE = re.compile(r"\b\d+(?:x\d+)+\b")
_MLIR_SHAPE = re.compile(r"(?<=<)(?:\d+|\?)x(?:(?:\d+|\?)x)*(?=[a-z])")  # tensor<2x3xf32>, TF's MLIR bridge
# Slots that always hold a node/tensor name, whatever it looks like.
_NAME_SLOTS = re.compile(r"(\b(?:name|Name|producer|node_name|input_name|output_name|tensor_name)\s*[:=]?\s*)"
                         r"(['\"])[^'\"]*\2|(\bName:\s*|\bnode name:\s*|\{\{node\s+)([^\s,)}]+)")
_PAREN_SLOT = re.compile(r"(\b(?:node|parameter)\s*)\(([^()\s]+)\)")
_BARE_SLOT = re.compile(r"(\b(?:param|var)=)([A-Za-z_][\w.]*)|(\b(?:LHS|RHS)\s+)([A-Za-z_]\w*)(?=\s+has\b)")
# Printed graph pieces (see the module note): the opening of a span whose balanced contents are dropped.
_ARGS_LEAD = re.compile(r"\b(?P<word>(?:[Kk]w)?[Aa]rgs)\b\s*[=:]?\s*'?(?=[(\[{])")
_REPR_LEAD = re.compile(r"\b(?:SymbolicTensor|FakeTensor|FunctionalTensor)(?=\()")
# An LLVM comparison's predicate (fcmp oeq / one / olt, icmp eq / slt ...) names the op, not the fault: the
# verifier's "Invalid operand types for FCmp instruction" on Equal and on NotEqual is one lowering bug.
# Parallax's own pipeline names ("killed by SIGSEGV in stage import of torch>onnx:dynamo>tvm:O1:llvm"): the
# pipeline is the finding's, never part of the failure's wording.
_PIPELINE = re.compile(r"\b(?:torch|tf)>[\w:.>]+")
# Two operands whose dtypes differ ("Binary operators must have the same datatype ... T.float32 on the LHS ...
# T.float64 on the RHS"): which pair of dtypes met is incidental, the op and the place it happens are the bug.
_DTYPE_CLASH = re.compile(r"must have the same (?:data ?type|dtype)", re.IGNORECASE)
_DTYPE_WORD = re.compile(r'\bT\.(?:float|bfloat|int|uint|bool)\d*\b|(?<=dtype=)"(?:float|bfloat|int|uint|bool)\d*"')
_LLVM_PREDICATE = re.compile(r"\b([fi]cmp)\s+[a-z]{2,3}\b")
_RELAX_CALL = re.compile(r"\bR\.[A-Za-z_][\w.]*(?=\()")
_RELAX_TYPES = frozenset({"R.Tensor", "R.shape", "R.Shape"})
# An operand that is the graph's: a variable (lv2, x, %x) or a bound constant (metadata["relax.expr.Constant"][3]).
_BARE_VAR = re.compile(r"%?[A-Za-z_]\w*|metadata\[[^\]]*\](?:\[\d+\])?")
_QUOTED_LIST = re.compile(r"\[\s*'[^'\]]*'(?:\s*,\s*'[^'\]]*')+\s*\]")
_COMMA_LIST = re.compile(r"(not supported for frontend ONNX:\s*)([\w.]+(?:\s*,\s*[\w.]+)+)")
_CLOSE = {"(": ")", "[": "]", "{": "}"}
# Bounds that keep a pathological message (thousands of unclosed brackets) linear: spans longer than this are
# left alone, and only the first few leads of a line are looked at.
_MAX_SPAN = 4000
_MAX_LEADS = 64
# TVM prints an operator as its whole registry entry; its name is the op (`tirx.acos`), not a graph name.
_IR_OP = re.compile(r'\bir\.Op\((?:[^()]|\([^()]*\))*?\bname="([^"]+)"(?:[^()]|\([^()]*\))*\)')
_TOKEN = re.compile(r"[\w./\\:%@\-]+")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])")
_SPACE = re.compile(r"\s+")
# Unions printed from a set (onnxscript's type constraints "INT32 | UINT8 | ..."): their order follows the
# process's hash seed, so the same bug would get a different signature in another worker.
_UNION = re.compile(r"\b[A-Z][A-Z0-9_]*(?:\s*\|\s*[A-Z][A-Z0-9_]*)+\b")
# "ValueError: ..." as a traceback's last line; str(exc) lacks it, so both forms normalise alike.
_EXC_PREFIX = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Failed|Unsupported)\w*:\s")


def _balanced_end(text: str, start: int) -> int:
    """Index just past the bracket that closes the one at `start`, or -1 if it is never closed."""
    stack = []
    for i in range(start, min(len(text), start + _MAX_SPAN)):
        ch = text[i]
        if ch in _CLOSE:
            stack.append(_CLOSE[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
            if not stack:
                return i + 1
        elif ch in ")]}":
            return -1
    return -1


def _split_args(inner: str) -> list[str]:
    """Top-level comma-separated parts of an argument list."""
    parts, depth, cur = [], 0, []
    for ch in inner:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _relax_calls(line: str, depth: int = 0) -> str:
    """`R.op(lv, R.const(1.0, "float32"), x)` -> `R.op(<id>, R.const(1.0, "float32"), <id>)`; a Relax type
    `R.Tensor((2, 3), dtype="f")` -> `R.Tensor(<shape>, dtype="f")`. Variables and shapes are the graph's."""
    out, pos = [], 0
    for n, m in enumerate(_RELAX_CALL.finditer(line)):
        if n == _MAX_LEADS or depth == _MAX_LEADS:
            break
        if m.start() < pos:
            continue
        end = _balanced_end(line, m.end())
        if end < 0:
            continue
        args = _split_args(line[m.end() + 1:end - 1]) if end - m.end() > 2 else []
        kept = []
        for i, arg in enumerate(args):
            if "=" in arg.split("(", 1)[0]:  # keyword argument: dtype="float32", axis=[1]
                kept.append(arg)
            elif m.group(0) in _RELAX_TYPES and i == 0:
                kept.append("<shape>")
            elif _BARE_VAR.fullmatch(arg) and arg not in ("True", "False", "None"):
                kept.append("<id>")
            else:
                kept.append(_relax_calls(arg, depth + 1))
        out += [line[pos:m.start()], m.group(0), "(", ", ".join(kept), ")"]
        pos = end
    return "".join(out) + line[pos:]


def _collapse(line: str, lead: re.Pattern[str], placeholder: str | None) -> str:
    """Replace each balanced span that follows `lead` by a placeholder (`<args>`, `<kwargs>`, `(<value>)`)."""
    out, pos = [], 0
    for n, m in enumerate(lead.finditer(line)):
        if n == _MAX_LEADS:
            break
        if m.start() < pos:
            continue
        end = _balanced_end(line, m.end())
        if end < 0:
            continue
        word = m.groupdict().get("word")
        text = placeholder if placeholder is not None else f"<{(word or 'args').lower()}>"
        out += [line[pos:m.end()], text]
        pos = end
    return "".join(out) + line[pos:]


def _sort_lists(line: str) -> str:
    """Lists printed from a set: sort them, so the hash seed of the process does not show."""
    line = _QUOTED_LIST.sub(lambda m: "[" + ", ".join(sorted(_split_args(m.group(0)[1:-1]))) + "]", line)
    return _COMMA_LIST.sub(lambda m: m.group(1) + ", ".join(sorted(_split_args(m.group(2)))), line)


def _is_name(token: str) -> bool:
    """A graph- or machine-specific identifier: a path, a %value, t7 / n3, x_mm_1, add:0, a long hash,
    TVM's own variable names (lv, lv3, gv, alloc2)."""
    core = token.rstrip(".:")
    if re.fullmatch(r"(?:lv|gv)\d*|(?:alloc|storage)\d+", core):
        return True
    if ("/" in core and len(core) > 1) or "\\" in core:
        return True
    if core.startswith("%") and len(core) > 1:
        return True
    if re.fullmatch(r"[A-Za-z]{1,2}\d+", core) and not re.fullmatch(r"(?:f|i|u|bf|fp)\d+", core):  # keep f32, i64
        return True
    if re.search(r"[A-Za-z]", core) and re.search(r"[_:]\d+$", core):
        return True
    if re.fullmatch(r"_+\d+", core) or re.fullmatch(r"tmp\w{4,}", core):
        return True
    return bool(re.fullmatch(r"[0-9a-fA-F]{12,}", core) and re.search(r"\d", core))


def _replace_token(m: re.Match[str]) -> str:
    token = m.group(0)
    if not _is_name(token):
        return token
    tail = token[len(token.rstrip(".:")):]
    return "<id>" + tail


def _blank_name_slot(m: re.Match[str]) -> str:
    if m.group(1) is not None:  # name 'x' / Name:'x' / name="x"
        return m.group(1) + m.group(2) + "<id>" + m.group(2)
    return m.group(3) + "<id>"  # Name: x


def _blank_bare_slot(m: re.Match[str]) -> str:
    return (m.group(1) or m.group(3)) + "<id>"  # param=x / the LHS x has


def _scrub(line: str) -> str:
    line = _EXC_PREFIX.sub("", line.strip())
    line = _UNION.sub(lambda m: " | ".join(sorted(re.split(r"\s*\|\s*", m.group(0)))), line)
    line = _UUID.sub("<uuid>", line)
    line = _HEX.sub("<addr>", line)
    line = _WIN_PATH.sub("<id>", line)
    line = _IR_OP.sub(lambda m: f"Op({m.group(1)})", line)
    line = _LLVM_PREDICATE.sub(lambda m: f"{m.group(1)} <pred>", line)
    if _DTYPE_CLASH.search(line):
        line = _DTYPE_WORD.sub("<dtype>", line)
    line = _PIPELINE.sub("<pipeline>", line)
    line = _sort_lists(line)
    line = _collapse(line, _ARGS_LEAD, None)
    line = _collapse(line, _REPR_LEAD, "(<value>)")
    line = _relax_calls(line)
    line = _NAME_SLOTS.sub(_blank_name_slot, line)
    line = _BARE_SLOT.sub(_blank_bare_slot, line)
    line = _PAREN_SLOT.sub(lambda m: m.group(1) + "(<id>)", line)
    for pattern in (_BRACKET_SHAPE, _PAREN_SHAPE, _BRACE_SHAPE, _X_SHAPE, _MLIR_SHAPE):
        line = pattern.sub("<shape>", line)
    line = _TOKEN.sub(_replace_token, line)
    line = _NUMBER.sub("N", line)
    return _SPACE.sub(" ", line).strip()


def _meaningful_lines(message: str) -> list[str]:
    """Lines that describe the failure: after the last traceback frame, without frames or chains."""
    text = _ANSI.sub("", message[:_MAX_CHARS])
    if _SUMMARY_MARK in text:  # what follows the summary is advice; workers file the summary alone
        text = text.split(_SUMMARY_MARK, 1)[1].split(_SUMMARY_END, 1)[0]
    text = text.split("[Caused by the value", 1)[0]  # torch.onnx: a dump of the TorchScript value, all names
    lines = text.splitlines()
    if "Traceback (most recent call last):" in text:
        frames = [i for i, line in enumerate(lines) if _FRAME.match(line)]
        if frames:
            rest = lines[frames[-1] + 1:]
            # drop the frame's source line and caret markers (indented) that follow it
            while rest and rest[0][:1].isspace():
                rest = rest[1:]
            lines = rest
    out = []
    for line in lines:
        if _FRAME.match(line) or _NATIVE_FRAME.match(line) or _CHAIN.match(line):
            continue
        if not re.search(r"[A-Za-z]{2}", line):  # blank, "⬆️", "^^^^", "===="
            continue
        out.append(line)
    return out


def normalise_message(msg: str) -> str:
    """The stable part of an error message: first MAX_LINES meaningful lines, variable parts stripped."""
    kept = []
    for line in _meaningful_lines(msg):
        scrubbed = _scrub(line)
        if scrubbed and scrubbed not in kept:
            kept.append(scrubbed)
        if len(kept) == MAX_LINES:
            break
    return "\n".join(kept)


def _field(text: str) -> str:
    return _SPACE.sub(" ", text.replace("|", "/")).strip()


def _short_type(exc_type: str) -> str:
    return exc_type.rsplit(".", 1)[-1]


def signature_text(component: str, stage: str, kind: str, exc_type: str, message: str) -> str:
    """The human-readable crash key: the fields and the normalised message (one line)."""
    norm = normalise_message(message).replace("\n", " / ")
    return "|".join(["crash", _field(component), stage, kind, _short_type(exc_type), norm])


def crash_signature(component: str, stage: str, kind: str, exc_type: str, message: str) -> str:
    """crash|component|stage|kind|ExcType|16 hex of sha256(normalised message)."""
    digest = hashlib.sha256(normalise_message(message).encode()).hexdigest()[:16]
    return "|".join(["crash", _field(component), stage, kind, _short_type(exc_type), digest])


def mismatch_signature(component: str, stage: str, first_op: str, klass: str) -> str:
    """mismatch|component|stage|first diverging op|class: short and readable, no hash needed."""
    return "|".join(["mismatch", _field(component), stage, _field(first_op) or "?", klass])


def gap_signature(component: str, stage: str, exc_type: str, message: str, op: str) -> str:
    """gap|component|stage|op|ExcType|16 hex: one declined op. A message that lists several ops is one gap per
    op, and the op declined alone or alongside others is the same gap (the list itself is masked)."""
    digest = hashlib.sha256(normalise_message(mask_op_lists(message)).encode()).hexdigest()[:16]
    return "|".join(["gap", _field(component), stage, _field(op) or "?", _short_type(exc_type), digest])
