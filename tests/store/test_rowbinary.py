"""The RowBinary encoder, byte for byte (the engine round-trip is in tests/integration/test_store.py)."""

import math
import struct

import pytest

from store.base import LOGICAL_TYPES
from store.rowbinary import ENCODERS, encode_rows, leb128


@pytest.mark.parametrize("n, expected", [
    (0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"),
    (16383, b"\xff\x7f"), (16384, b"\x80\x80\x01"), (1 << 20, b"\x80\x80\x40"), (2**64 - 1, b"\xff" * 9 + b"\x01"),
])
def test_leb128(n, expected):
    assert leb128(n) == expected


def test_leb128_rejects_negative():
    with pytest.raises(ValueError):
        leb128(-1)


def test_every_logical_type_has_an_encoder():
    assert set(ENCODERS) == LOGICAL_TYPES


def test_numbers_are_little_endian_fixed_width():
    types = ["Int64", "UInt64", "Int32", "UInt32", "UInt8", "Float64"]
    cols = [[-2, 2**63 - 1], [2**64 - 1, 0], [-(2**31), 7], [2**32 - 1, 1], [255, 0], [1.5, -0.0]]
    assert encode_rows(types, cols) == (
        struct.pack("<qQiIBd", -2, 2**64 - 1, -(2**31), 2**32 - 1, 255, 1.5)
        + struct.pack("<qQiIBd", 2**63 - 1, 0, 7, 1, 0, -0.0))


def test_nan_and_infinities_keep_their_bits():
    raw = encode_rows(["Float64"], [[math.nan, math.inf, -math.inf]])
    values = struct.unpack("<3d", raw)
    assert math.isnan(values[0]) and values[1] == math.inf and values[2] == -math.inf


def test_strings_are_length_prefixed_utf8_or_raw_bytes():
    big = "x" * (1 << 20)
    cols = [["", "é😀", "a\x00b", big, b"\xff\x00", bytearray(b"ba")]]
    assert encode_rows(["String"], cols) == (
        b"\x00" + b"\x06" + "é😀".encode() + b"\x03a\x00b" + b"\x80\x80\x40" + big.encode() + b"\x02\xff\x00"
        + b"\x02ba")


def test_rows_interleave_columns():
    raw = encode_rows(["String", "UInt8"], [["a", "bc"], [1, 2]])
    assert raw == b"\x01a\x01" + b"\x02bc\x02"


def test_arrays_are_count_prefixed():
    raw = encode_rows(["Array(String)", "Array(Float64)", "Array(UInt8)"],
                      [[["a", ""], []], [[1.0], []], [[1, 0, 1], []]])
    assert raw == (b"\x02\x01a\x00" + b"\x01" + struct.pack("<d", 1.0) + b"\x03\x01\x00\x01"
                   + b"\x00" + b"\x00" + b"\x00")


@pytest.mark.parametrize("typ, value, error", [
    ("UInt64", -1, OverflowError), ("UInt32", 2**32, OverflowError), ("Int64", 2**63, OverflowError),
    ("UInt8", 256, OverflowError), ("Int64", "5", TypeError), ("Int64", 1.5, TypeError), ("String", 5, TypeError),
    ("String", None, TypeError), ("String", "\udc80", UnicodeEncodeError), ("Array(UInt8)", [300], ValueError),
])
def test_values_that_do_not_fit_raise(typ, value, error):
    with pytest.raises(error):
        encode_rows([typ], [[value]])


def test_ragged_columns_raise():
    with pytest.raises(ValueError):
        encode_rows(["UInt8", "UInt8"], [[1, 2], [1]])
