"""Arrays between processes: exact round trip for every dtype and rank, and corrupt bytes rejected."""

import numpy as np
import pytest

from fuzzer.targets.arrays import ArrayPackError, pack_dict, pack_list, unpack_dict, unpack_list


def test_round_trip_keeps_dtype_shape_and_values():
    xs = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array(3, dtype=np.int64), np.zeros((0, 4), np.float16),
          np.array([True, False]), np.ones((3, 5), np.int8)[:, ::2], np.array([np.nan, -np.inf], np.float64),
          np.arange(24, dtype=np.int32).reshape(2, 3, 4).transpose(2, 0, 1)]
    for a, b in zip(xs, unpack_list(pack_list(xs))):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    d = {"x": xs[0], "weird name:0": xs[3]}
    assert list(unpack_dict(pack_dict(d))) == list(d)


def test_object_arrays_and_corrupt_bytes_are_refused():
    with pytest.raises(ArrayPackError):
        pack_list([np.array([object()])])
    data = pack_list([np.arange(4.0)])
    for bad in (b"", b"PK\x03\x04" + data[4:], data[:6], data[:8] + b"{" + data[9:]):
        with pytest.raises(ArrayPackError):
            unpack_list(bad)
