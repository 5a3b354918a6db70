"""Input and output sets across the process boundary: a list (one per input) of lists of arrays."""

from __future__ import annotations

import numpy as np

from fuzzer.targets.arrays import pack_dict, unpack_dict


def pack_sets(sets: list[list[np.ndarray]]) -> bytes:
    return pack_dict({f"{k}:{j}": np.asarray(a) for k, arrays in enumerate(sets) for j, a in enumerate(arrays)})


def unpack_sets(data: bytes) -> list[list[np.ndarray]]:
    flat = unpack_dict(data)
    out: list[list[np.ndarray]] = []
    for key, a in flat.items():
        k, j = (int(p) for p in key.split(":"))
        while len(out) <= k:
            out.append([])
        out[k].append(a)
        if len(out[k]) != j + 1:
            raise ValueError(f"array set out of order at {key}")
    return out
