"""Length-prefixed frames: a JSON header plus named binary blobs, with no pickles anywhere.

Workers and the campaign exchange test cases (.npz arrays, ONNX model bytes) for days; a pickle
from a crashed or confused worker would be code execution, a JSON header plus raw bytes is not.

Byte layout (all integers little-endian):

    frame  = MAGIC (4 bytes, b"PXF1") | body_len (u64) | body
    body   = header_len (u32) | header (UTF-8 JSON object) | n_blobs (u32) | blob * n_blobs
    blob   = name_len (u16) | name (UTF-8) | size (u64) | data (size bytes)

The total length comes first so that a reader on a non-blocking pipe (`FrameDecoder`) knows when a
frame is complete without parsing it piecemeal; the magic catches a stream that lost its framing
(e.g. a library that printed into the protocol pipe).
"""

from __future__ import annotations

import json
import struct
from typing import BinaryIO

MAGIC = b"PXF1"
_PREFIX = struct.Struct("<4sQ")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
_U64 = struct.Struct("<Q")
# A sanity bound, far above any real test case, so a corrupt length fails fast instead of waiting forever.
MAX_FRAME_BYTES = 1 << 36
_JOIN_BELOW = 1 << 16


class FrameError(ValueError):
    """The byte stream is not a well-formed frame (truncated, corrupt, or not a frame at all)."""


def encode_frame(header: dict, blobs: dict[str, bytes] | None = None) -> list[bytes | bytearray | memoryview]:
    """The frame as a list of byte strings to write in order (blobs are not copied into one buffer)."""
    if not isinstance(header, dict):
        raise TypeError(f"frame header must be a dict, not {type(header).__name__}")
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    blobs = blobs or {}
    # Small pieces are joined so that a trivial frame costs one write; big blobs go through uncopied.
    parts: list[bytes | bytearray | memoryview] = [bytearray(_U32.pack(len(head)) + head + _U32.pack(len(blobs)))]
    for name, value in blobs.items():
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"blob {name!r} must be bytes, not {type(value).__name__}")
        data = memoryview(value).cast("B")
        raw_name = str(name).encode()
        if len(raw_name) > 0xFFFF:
            raise ValueError(f"blob name too long ({len(raw_name)} bytes)")
        meta = _U16.pack(len(raw_name)) + raw_name + _U64.pack(len(data))
        if isinstance(parts[-1], bytearray):
            parts[-1] += meta
        else:
            parts.append(bytearray(meta))
        if len(data) < _JOIN_BELOW:
            parts[-1] += data
        else:
            parts.append(data)
    body_len = sum(len(p) for p in parts)
    if body_len > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {body_len} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    parts[0][:0] = _PREFIX.pack(MAGIC, body_len)
    return parts


def write_frame(f: BinaryIO, header: dict, blobs: dict[str, bytes] | None = None) -> None:
    """Write one frame to a binary file object and flush it, so the reader sees it at once."""
    for part in encode_frame(header, blobs):
        f.write(part)
    f.flush()


def parse_prefix(prefix: bytes) -> int:
    """The body length announced by a frame's 12-byte prefix."""
    magic, body_len = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise FrameError(f"bad frame magic {magic!r} (expected {MAGIC!r}): the stream lost its framing")
    if body_len > MAX_FRAME_BYTES:
        raise FrameError(f"frame claims {body_len} bytes, over the {MAX_FRAME_BYTES}-byte limit")
    return body_len


def parse_body(body: bytes | bytearray | memoryview) -> tuple[dict, dict[str, bytes]]:
    """Decode a complete frame body (everything after the prefix)."""
    view = memoryview(body)
    pos = 0

    def take(n: int, what: str) -> memoryview:
        nonlocal pos
        if pos + n > len(view):
            raise FrameError(f"frame body truncated in {what} (needs {pos + n} bytes, has {len(view)})")
        chunk = view[pos:pos + n]
        pos += n
        return chunk

    (head_len,) = _U32.unpack(take(4, "header length"))
    try:
        header = json.loads(bytes(take(head_len, "header")).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FrameError(f"frame header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise FrameError(f"frame header must be a JSON object, got {type(header).__name__}")
    (n_blobs,) = _U32.unpack(take(4, "blob count"))
    blobs: dict[str, bytes] = {}
    for i in range(n_blobs):
        (name_len,) = _U16.unpack(take(2, f"blob {i} name length"))
        try:
            name = bytes(take(name_len, f"blob {i} name")).decode()
        except UnicodeDecodeError as e:
            raise FrameError(f"blob {i} name is not UTF-8: {e}") from None
        (size,) = _U64.unpack(take(8, f"blob {name!r} size"))
        blobs[name] = bytes(take(size, f"blob {name!r} data"))
    if pos != len(view):
        raise FrameError(f"frame body has {len(view) - pos} trailing bytes after {n_blobs} blobs")
    return header, blobs


def _read_exactly(f: BinaryIO, n: int) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got < n:
        chunk = f.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_frame(f: BinaryIO) -> tuple[dict, dict[str, bytes]]:
    """Read one frame from a blocking binary file object.

    Raises EOFError when the stream ends cleanly before a frame starts (the peer closed it) and
    FrameError when it ends inside a frame or the bytes are not a frame.
    """
    prefix = _read_exactly(f, _PREFIX.size)
    if not prefix:
        raise EOFError("stream closed")
    if len(prefix) < _PREFIX.size:
        raise FrameError(f"truncated frame prefix ({len(prefix)} of {_PREFIX.size} bytes)")
    body_len = parse_prefix(prefix)
    body = _read_exactly(f, body_len)
    if len(body) < body_len:
        raise FrameError(f"truncated frame body ({len(body)} of {body_len} bytes)")
    return parse_body(body)


class FrameDecoder:
    """Incremental decoder for a non-blocking reader: feed bytes as they arrive, take whole frames out.

    The parent waits on the pipe with poll() (so it can enforce deadlines and memory limits); a
    buffered file object would hide bytes from poll(), so the parent buffers here instead.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need: int | None = None  # body length of the frame being assembled, once its prefix arrived

    def feed(self, data: bytes) -> list[tuple[dict, dict[str, bytes]]]:
        self._buf += data
        frames = []
        while True:
            if self._need is None:
                if len(self._buf) < _PREFIX.size:
                    break
                self._need = parse_prefix(bytes(self._buf[:_PREFIX.size]))
            end = _PREFIX.size + self._need
            if len(self._buf) < end:
                break
            with memoryview(self._buf) as view:
                frames.append(parse_body(view[_PREFIX.size:end]))
            del self._buf[:end]
            self._need = None
        return frames

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame held back (non-zero at EOF means the peer died mid-frame)."""
        return len(self._buf)

