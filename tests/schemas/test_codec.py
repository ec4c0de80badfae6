import math

import pytest

from schemas import EVENT_TYPES, MARKER, DecodeError, EncodeError, ScalarBatch, decode, encode, fingerprint_of
from schemas.codec import SCHEMA_DIR, writer_schemas

from .samples import ENVELOPE, SAMPLES
from schemas.packing import split_planes


def _same(a, b):
    """Equality that treats NaN as equal to NaN, recursively."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b


def test_every_event_type_has_a_sample():
    assert {type(s) for s in SAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
def test_round_trip(record):
    data = encode(record)
    assert data[:2] == MARKER
    back = decode(data)
    assert _same(back, record)


def test_nan_and_infinities_are_kept_bit_exact():
    batch = SAMPLES[5]
    back = decode(encode(batch))
    assert math.isinf(back.values[0]) and back.values[0] > 0
    assert math.isinf(back.values[1]) and back.values[1] < 0
    assert math.isnan(back.values[3])


def test_packed_scalars_round_trip_bit_exact_and_read_as_lists():
    lists, packed = [s for s in SAMPLES if isinstance(s, ScalarBatch)]
    back = decode(encode(packed))
    assert back.packed and back.packed_values == packed.packed_values and back.packed_times == packed.packed_times
    assert back.name_idx == back.steps == back.times_ms == back.values == []
    assert len(back) == len(lists) == 4
    assert repr(back.point_columns()) == repr(lists.point_columns())


def test_packed_scalars_cost_28_bytes_a_point_and_no_python_object_each():
    from array import array

    n = 16_384
    batch = ScalarBatch(**ENVELOPE, names=["loss", "acc"], descriptions=["", ""],
                        packed_name_idx=array("i", [i % 2 for i in range(n)]).tobytes(),
                        packed_steps=split_planes(array("q", range(n)).tobytes(), 8),
                        packed_times=split_planes(array("d", [1_764_300_000 + i / 1000 for i in range(n)]).tobytes(),
                                                  8),
                        packed_values=array("d", [i / 3 for i in range(n)]).tobytes())
    assert 28 <= len(encode(batch)) / n < 28.1


def test_fingerprint_header_names_the_writer_schema():
    import json

    data = encode(SAMPLES[0])
    schema = json.loads((SCHEMA_DIR / "RunStarted.avsc").read_text())
    assert data[2:10] == fingerprint_of(schema)


def test_scalar_batch_costs_about_17_bytes_a_point():
    n = 1000
    batch = ScalarBatch(**ENVELOPE, names=["loss", "acc"], descriptions=["", ""], name_idx=[i % 2 for i in range(n)],
                        steps=list(range(n)), times_ms=[1_764_300_000_000 + i for i in range(n)],
                        values=[i / 3 for i in range(n)])
    assert len(encode(batch)) / n < 20


def test_encode_rejects_what_the_schema_cannot_hold():
    bad = ScalarBatch(**{**ENVELOPE, "seq": "seven"}, names=[], descriptions=[], name_idx=[], steps=[], times_ms=[], values=[])
    with pytest.raises(EncodeError):
        encode(bad)
    with pytest.raises(EncodeError):
        encode(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"\x00\x01" + b"\x00" * 20, "bad_marker"),
        (MARKER + b"\x00" * 3, "truncated"),
        (MARKER + b"\xff" * 8 + b"\x00", "unknown_fingerprint"),
        (b"\xc3\x01" + b"\x00" * (9 * 1024 * 1024), "too_large"),
    ],
)
def test_decode_names_the_reason(data, reason):
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert info.value.reason == reason


def test_trailing_and_truncated_bodies():
    data = encode(SAMPLES[5])
    with pytest.raises(DecodeError) as info:
        decode(data + b"\x00")
    assert info.value.reason == "trailing_bytes"
    with pytest.raises(DecodeError) as info:
        decode(data[:-3])
    assert info.value.reason in {"truncated", "malformed"}


def test_absurd_array_length_fails_fast():
    # A ScalarBatch header followed by an array block count of 2**62: must not allocate or loop for long.
    fp = encode(SAMPLES[5])[:10]
    body = b"\x02a\x02\x02b\x02c\x02"  # writer_id, seq, run_id, experiment, created_ms (short strings / small longs)
    with pytest.raises(DecodeError):
        decode(fp + body + b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f")
    with pytest.raises(DecodeError):
        decode(fp + body + _varint(2**62 << 1))  # zigzag of +2**62 items


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_registry_holds_current_and_history_for_every_type():
    versions = {(w.record, w.version) for w in writer_schemas()}
    for record in EVENT_TYPES:
        assert any(r is record for r, _ in versions)
