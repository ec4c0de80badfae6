"""Hostile bytes in the topic end in the dead-letter topic; the good events around them land."""

from __future__ import annotations

import os
from array import array
from dataclasses import replace

from clickhouse_driver import Client

import schemas
from schemas.kafka_client import kafka
from consumers.testing import create_topic, produce, wait_until
from runstream.testing import IngestProcess
from schemas import ScalarBatch
from schemas.packing import split_planes


def _good(seq: int) -> bytes:
    return schemas.encode(ScalarBatch(writer_id="w_good", seq=seq, run_id="run_h", experiment="hostile",
                                      created_ms=seq, names=["loss"], descriptions=[""], name_idx=[0], steps=[seq],
                                      times_ms=[seq], values=[float(seq)]))


def _hostile() -> list[tuple[str, bytes]]:
    good = _good(999)
    base = ScalarBatch(writer_id="w_bad", seq=1, run_id="run_h", experiment="hostile", created_ms=1, names=["x"],
                       descriptions=[""], name_idx=[0, 0], steps=[1, 2], times_ms=[1, 2], values=[1.0, 2.0])
    packed = replace(base, name_idx=[], steps=[], times_ms=[], values=[],
                     packed_name_idx=array("i", [0, 0]).tobytes(),
                     packed_steps=split_planes(array("q", [1, 2]).tobytes(), 8),
                     packed_times=split_planes(array("d", [0.001, 0.002]).tobytes(), 8),
                     packed_values=array("d", [1.0, 2.0]).tobytes())
    return [
        ("empty", b""),
        ("random", os.urandom(256)),
        ("truncated", good[: len(good) // 2]),
        ("900 KB", b"\xc3\x01" + os.urandom(900 * 1024)),
        ("wrong fingerprint", b"\xc3\x01" + b"\x00" * 8 + good[10:]),
        ("unequal arrays", schemas.encode(replace(base, seq=2, steps=[1]))),
        ("text_pos out of range", schemas.encode(replace(base, seq=3, text_pos=[5], text_values=["t"]))),
        ("name_idx out of range", schemas.encode(replace(base, seq=4, name_idx=[0, 9]))),
        ("packed, ragged columns", schemas.encode(replace(packed, seq=5, packed_steps=packed.packed_steps[:8]))),
        ("packed, not whole items", schemas.encode(replace(packed, seq=6, packed_values=b"\x00" * 15))),
        ("packed, time not finite", schemas.encode(replace(packed, seq=7, packed_times=split_planes(
            array("d", [1.0, float("nan")]).tobytes(), 8)))),
        ("packed and lists at once", schemas.encode(replace(packed, seq=8, values=[1.0, 2.0]))),
    ]


def test_hostile_bytes_go_to_the_dlq_and_good_events_land(kafka_bootstrap, clickhouse_url, unique_name, tmp_path):
    topic, dlq = unique_name, unique_name + ".dlq"
    url = clickhouse_url.rsplit("/", 1)[0] + "/" + unique_name
    create_topic(kafka_bootstrap, topic, 1)
    hostile = _hostile()
    messages: list[tuple[bytes | None, bytes]] = []
    for i, (_, value) in enumerate(hostile):
        messages.append((b"run_h", _good(i + 1)))
        messages.append((b"run_h", value))
    messages.append((b"run_h", _good(len(hostile) + 1)))
    produce(kafka_bootstrap, topic, messages)
    args = ["--kafka", kafka_bootstrap, "--clickhouse", url, "--topic", topic, "--group", topic, "--dlq-topic", dlq,
            "--flush-interval", "0.2"]
    client = Client.from_url(clickhouse_url.rsplit("/", 1)[0] + "/default")

    def good_points() -> int:
        try:
            return client.execute(
                f"SELECT count() FROM `{unique_name}`.metric_scalars FINAL WHERE writer_id = 'w_good'")[0][0]
        except Exception:
            return 0

    with IngestProcess(args, tmp_path / "worker.log") as worker:
        wait_until(lambda: good_points() == len(hostile) + 1, timeout_s=90, what="the good events")
        assert worker.stop() == 0, worker.output()

    consumer = kafka.KafkaConsumer(dlq, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                   consumer_timeout_ms=10_000, group_id=None)
    try:
        letters = [r for _, r in zip(range(100), consumer)]
    finally:
        consumer.close()
    assert len(letters) == len(hostile)
    for letter in letters:
        headers = dict(letter.headers)
        assert headers["reason"] and headers["source_topic"] == topic.encode()
        assert int(headers["source_offset"]) % 2 == 1  # every hostile message sat at an odd offset
    assert sorted(len(r.value) for r in letters) == sorted(len(v) for _, v in hostile)
    reasons = client.execute(
        f"SELECT reason FROM `{unique_name}`.rejected_events FINAL WHERE run_id = 'run_h' ORDER BY source_offset")
    assert len(reasons) == len(hostile)
    assert {"malformed_batch", "bad_name_index"} <= {r[0] for r in reasons}
    # the partition was never stalled: the consumer group committed past everything
    client.execute(f"DROP DATABASE IF EXISTS `{unique_name}`")
    client.disconnect()
