"""The Native block encoder, byte for byte (the engine round-trip is in tests/integration/test_store.py)."""

import struct

import pytest

from store.base import LOGICAL_TYPES
from store.native import COLUMN_ENCODERS, encode_block


def test_every_logical_type_has_an_encoder():
    assert set(COLUMN_ENCODERS) == LOGICAL_TYPES


def test_block_layout_is_column_major():
    raw = encode_block(["a", "s"], ["Int64", "String"], [[1, -1], ["x", ""]])
    assert raw == (b"\x02\x02" + b"\x01a\x05Int64" + struct.pack("<qq", 1, -1)
                   + b"\x01s\x06String" + b"\x01x\x00")


def test_arrays_are_offsets_then_flattened_items():
    raw = encode_block(["n", "t", "b"], ["Array(Float64)", "Array(String)", "Array(UInt8)"],
                       [[[1.0, 2.0], [], [3.0]], [["a"], [], ["b", "c"]], [[1], [], [0, 255]]])
    expected = b"\x03\x03"
    expected += b"\x01n\x0eArray(Float64)" + struct.pack("<QQQ", 2, 2, 3) + struct.pack("<ddd", 1.0, 2.0, 3.0)
    expected += b"\x01t\x0dArray(String)" + struct.pack("<QQQ", 1, 1, 3) + b"\x01a\x01b\x01c"
    expected += b"\x01b\x0cArray(UInt8)" + struct.pack("<QQQ", 1, 1, 3) + b"\x01\x00\xff"
    assert raw == expected


def test_bytes_and_unicode_strings():
    raw = encode_block(["d"], ["String"], [[b"\xff\x00", "😀", bytearray(b"z")]])
    assert raw.endswith(b"\x02\xff\x00\x04" + "😀".encode() + b"\x01z")


@pytest.mark.parametrize("typ, value, error", [
    ("UInt64", -1, OverflowError), ("UInt8", 256, OverflowError), ("Int64", "5", TypeError),
    ("String", 5, TypeError), ("String", "\udc80", UnicodeEncodeError), ("Array(UInt8)", [300], ValueError),
    ("Array(Float64)", ["x"], TypeError),
])
def test_values_that_do_not_fit_raise(typ, value, error):
    with pytest.raises(error):
        encode_block(["c"], [typ], [[value]])


def test_ragged_columns_raise():
    with pytest.raises(ValueError):
        encode_block(["a", "b"], ["UInt8", "UInt8"], [[1, 2], [1]])
