"""Failure signatures for dedup: the same bug on another graph must give the same signature.

An error message carries the graph it came from: node and tensor names ('onnx::Add_12',
"/layer/Conv_3", x_mm_1, %x5), shapes ([1, 3, 224], (2,3), 2x3, {2,6}), sizes, addresses, file
paths with line numbers, temp dirs and uuids. `normalise_message` strips those and keeps the words
that name the failure (the library's own wording, op types, dtypes), from the first few meaningful
lines; traceback frames and converter boilerplate are skipped. Case is kept: op types are
case-sensitive (`Erf` the ONNX op, `erf` a torch function).
"""

from __future__ import annotations

import hashlib
import re

MAX_LINES = 3
_MAX_CHARS = 100_000

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_FRAME = re.compile(r'^\s*File "[^"]*", line \d+')  # Python frames, also TF's "The op is created at:" list
_NATIVE_FRAME = re.compile(r"^\s*(?:\d+:\s|#\d+\s|\[bt\]|Stack trace:|Traceback \(most recent call last\):)")
_CHAIN = re.compile(r"^(?:During handling of the above exception|The above exception was the direct cause)")
# torch.onnx's ConversionError puts the same three paragraphs of advice before the real cause.
_SUMMARY_MARK = "## Exception summary"

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
_NAME_SLOTS = re.compile(r"(\b(?:name|Name)\s*[:=]?\s*)(['\"])[^'\"]*\2|(\bName:\s*)(\S+)")
_PAREN_SLOT = re.compile(r"(\b(?:node|parameter)\s*)\(([^()\s]+)\)")
_TOKEN = re.compile(r"[\w./\\:%@\-]+")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])")
_SPACE = re.compile(r"\s+")
# Unions printed from a set (onnxscript's type constraints "INT32 | UINT8 | ..."): their order follows the
# process's hash seed, so the same bug would get a different signature in another worker.
_UNION = re.compile(r"\b[A-Z][A-Z0-9_]*(?:\s*\|\s*[A-Z][A-Z0-9_]*)+\b")
# "ValueError: ..." as a traceback's last line; str(exc) lacks it, so both forms normalise alike.
_EXC_PREFIX = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Failed|Unsupported)\w*:\s")


def _is_name(token: str) -> bool:
    """A graph- or machine-specific identifier: a path, a %value, t7 / n3, x_mm_1, add:0, a long hash."""
    core = token.rstrip(".:")
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


def _scrub(line: str) -> str:
    line = _EXC_PREFIX.sub("", line.strip())
    line = _UNION.sub(lambda m: " | ".join(sorted(re.split(r"\s*\|\s*", m.group(0)))), line)
    line = _UUID.sub("<uuid>", line)
    line = _HEX.sub("<addr>", line)
    line = _WIN_PATH.sub("<id>", line)
    line = _NAME_SLOTS.sub(_blank_name_slot, line)
    line = _PAREN_SLOT.sub(lambda m: m.group(1) + "(<id>)", line)
    for pattern in (_BRACKET_SHAPE, _PAREN_SHAPE, _BRACE_SHAPE, _X_SHAPE, _MLIR_SHAPE):
        line = pattern.sub("<shape>", line)
    line = _TOKEN.sub(_replace_token, line)
    line = _NUMBER.sub("N", line)
    return _SPACE.sub(" ", line).strip()


def _meaningful_lines(message: str) -> list[str]:
    """Lines that describe the failure: after the last traceback frame, without frames or chains."""
    text = _ANSI.sub("", message[:_MAX_CHARS])
    if _SUMMARY_MARK in text:
        text = text.split(_SUMMARY_MARK, 1)[1]
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
