import pytest

from consumers.decode import check_key, decode_message
from consumers.errors import InvalidEvent
from schemas import DecodeError, encode

from . import factory as f


def test_decodes_a_valid_message():
    event = f.scalars()
    assert decode_message(f.message(event)) == event


@pytest.mark.parametrize("value, reason", [
    (b"", "empty"),
    (b"\x00\x01garbage", "bad_marker"),
    (b"\xc3\x01\x00", "truncated"),
    (b"\xc3\x01" + b"\xff" * 8 + b"body", "unknown_fingerprint"),
])
def test_garbage_raises_decode_error_only(value, reason):
    with pytest.raises(DecodeError) as info:
        decode_message(f.message(value))
    assert info.value.reason == reason


def test_truncated_valid_message():
    data = encode(f.scalars(points=50))
    with pytest.raises(DecodeError):
        decode_message(f.message(data[: len(data) // 2]))


def test_key_must_be_the_run_id():
    event = f.scalars("run_a")
    check_key(f.message(event), event)
    check_key(f.message(event, key=None), event)
    with pytest.raises(InvalidEvent) as info:
        check_key(f.message(event, key=b"run_b"), event)
    assert info.value.reason == "key_mismatch"
