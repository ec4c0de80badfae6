"""Schema evolution: every released schema stays readable, and history is complete.

Rules (schemas/README.md): add fields only with defaults; never reuse or rename a
field; never change a type. The current schema of each record must equal one
file in ``avro/history/<Record>/`` (release = copy the schema there as vN.avsc).
"""

import io
import json

import fastavro
import pytest

from schemas import EVENT_TYPES, ScalarBatch, decode, encode
from schemas.codec import MARKER, SCHEMA_DIR, fingerprint_of, writer_schemas

from .samples import SAMPLES

HISTORY = sorted((SCHEMA_DIR / "history").glob("*/*.avsc"))
BY_TYPE = {type(s).__name__: s for s in SAMPLES}


def _datum_for(schema: dict, sample) -> dict:
    """The sample as a datum of an older schema: only the fields that schema knows."""
    from schemas.codec import _to_datum

    full = _to_datum(sample)
    return {f["name"]: full[f["name"]] for f in schema["fields"]}


def test_current_schema_is_released_in_history():
    for record in EVENT_TYPES:
        short = record.SCHEMA_NAME.rsplit(".", 1)[1]
        current = fingerprint_of(json.loads((SCHEMA_DIR / f"{short}.avsc").read_text()))
        released = {fingerprint_of(json.loads(p.read_text())) for p in (SCHEMA_DIR / "history" / short).glob("*.avsc")}
        assert current in released, f"{short}.avsc changed: copy it to history/{short}/vN.avsc when released"


@pytest.mark.parametrize("path", HISTORY, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_bytes_from_every_historical_writer_decode_with_the_current_reader(path):
    schema = json.loads(path.read_text())
    sample = BY_TYPE[path.parent.name]
    out = io.BytesIO()
    out.write(MARKER + fingerprint_of(schema))
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), _datum_for(schema, sample))
    back = decode(out.getvalue())
    assert type(back) is type(sample)
    assert back.run_id == sample.run_id and back.seq == sample.seq


@pytest.mark.parametrize("path", HISTORY, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_current_writer_is_readable_by_every_historical_reader(path):
    # Forward compatibility: a worker still on an old release reads new producers' bytes.
    schema = json.loads(path.read_text())
    sample = BY_TYPE[path.parent.name]
    body = encode(sample)[10:]
    current = json.loads((SCHEMA_DIR / path.name.replace(path.name, f"{path.parent.name}.avsc")).read_text())
    datum = fastavro.schemaless_reader(io.BytesIO(body), fastavro.parse_schema(current), fastavro.parse_schema(schema))
    assert datum["run_id"] == sample.run_id


def test_an_added_field_with_a_default_is_both_ways_compatible(tmp_path):
    """The mechanism itself: a v2 that adds a defaulted field reads v1 bytes and vice versa."""
    v1 = json.loads((SCHEMA_DIR / "Heartbeat.avsc").read_text())
    v2 = json.loads(json.dumps(v1))
    v2["fields"].append({"name": "gpu_util", "type": ["null", "double"], "default": None})
    datum = {"writer_id": "w", "seq": 1, "run_id": "r", "experiment": "e", "created_ms": 1, "interval_ms": 5}
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(v1), datum)
    new_reads_old = fastavro.schemaless_reader(io.BytesIO(out.getvalue()), fastavro.parse_schema(v1), fastavro.parse_schema(v2))
    assert new_reads_old["gpu_util"] is None
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(v2), {**datum, "gpu_util": 0.5})
    old_reads_new = fastavro.schemaless_reader(io.BytesIO(out.getvalue()), fastavro.parse_schema(v2), fastavro.parse_schema(v1))
    assert "gpu_util" not in old_reads_new and old_reads_new["interval_ms"] == 5


def test_every_history_file_is_registered_with_the_decoder():
    registered = {w.fingerprint for w in writer_schemas()}
    for path in HISTORY:
        assert fingerprint_of(json.loads(path.read_text())) in registered


def _v(n: int) -> dict:
    return json.loads((SCHEMA_DIR / "history" / "ScalarBatch" / f"v{n}.avsc").read_text())


def test_scalar_batch_v1_list_bytes_read_as_the_same_points_by_the_current_reader():
    lists = next(s for s in SAMPLES if isinstance(s, ScalarBatch) and not s.packed)
    v1 = _v(1)
    out = io.BytesIO()
    out.write(MARKER + fingerprint_of(v1))
    fastavro.schemaless_writer(out, fastavro.parse_schema(v1), _datum_for(v1, lists))
    back = decode(out.getvalue())
    assert not back.packed and back.packed_values == b""
    assert repr(back.point_columns()) == repr(lists.point_columns())


def test_scalar_batch_v2_packed_bytes_resolve_under_the_v1_reader():
    # An old worker's reader schema resolves a packed batch (its list fields are present, empty); an old
    # worker never gets that far, though: the v2 fingerprint is unknown to it, so it dead-letters the
    # message (unknown_fingerprint) instead of reading an empty batch.
    packed = next(s for s in SAMPLES if isinstance(s, ScalarBatch) and s.packed)
    body = encode(packed)[10:]
    datum = fastavro.schemaless_reader(io.BytesIO(body), fastavro.parse_schema(_v(2)), fastavro.parse_schema(_v(1)))
    assert datum["name_idx"] == [] and datum["names"] == packed.names and "packed_values" not in datum


def test_scalar_batch_v2_only_adds_defaulted_fields_to_v1():
    v1, v2 = _v(1), _v(2)
    fields1 = {f["name"]: f for f in v1["fields"]}
    fields2 = {f["name"]: f for f in v2["fields"]}
    assert list(fields2)[: len(fields1)] == list(fields1)
    for name, field in fields1.items():
        assert fields2[name]["type"] == field["type"], name
    for name in set(fields2) - set(fields1):
        assert "default" in fields2[name], name
