"""Property test: whatever bytes arrive, decode returns a record or raises DecodeError, nothing else."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import DecodeError, Event, decode, encode

from .samples import SAMPLES

VALID = [encode(s) for s in SAMPLES]


def _decode_or_decode_error(data: bytes) -> None:
    try:
        assert isinstance(decode(data), Event)
    except DecodeError as exc:
        assert exc.reason in DecodeError.REASONS


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _decode_or_decode_error(data)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(VALID).flatmap(lambda v: st.tuples(st.just(v), st.binary(max_size=64))))
def test_valid_header_then_random_body(pair):
    valid, tail = pair
    _decode_or_decode_error(valid[:10] + tail)


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=255)), max_size=8),
    st.integers(min_value=0, max_value=10_000),
)
def test_mutated_valid_messages(valid, flips, cut):
    data = bytearray(valid)
    for pos, byte in flips:
        data[pos % len(data)] = byte
    _decode_or_decode_error(bytes(data[: max(cut, 0) or len(data)]))
