"""Per-run limits on the real stack: the 51st metric name is rejected, the first 50 keep every point,
also when the worker that saw the first 50 names was killed and a fresh one takes over."""

from __future__ import annotations

from clickhouse_driver import Client

import schemas
from consumers.testing import create_topic, produce, wait_until
from runstream.testing import IngestProcess
from schemas import ScalarBatch

_seq = iter(range(1, 10_000))


def _batch(names: list[str], steps: range) -> tuple[bytes, bytes]:
    idx = [i for _ in steps for i in range(len(names))]
    st = [s for s in steps for _ in names]
    return b"run_limits", schemas.encode(ScalarBatch(
        writer_id="w_limits", seq=next(_seq), run_id="run_limits", experiment="limits", created_ms=1,
        names=names, descriptions=[""] * len(names), name_idx=idx, steps=st, times_ms=st, values=[0.5] * len(st)))


def test_51st_name_rejected_first_50_keep_every_point_across_a_restart(kafka_bootstrap, clickhouse_url,
                                                                        unique_name, tmp_path):
    topic = unique_name
    url = clickhouse_url.rsplit("/", 1)[0] + "/" + unique_name
    create_topic(kafka_bootstrap, topic, 4)
    args = ["--kafka", kafka_bootstrap, "--clickhouse", url, "--topic", topic, "--group", topic,
            "--dlq-topic", topic + ".dlq", "--flush-interval", "0.2"]
    client = Client.from_url(clickhouse_url.rsplit("/", 1)[0] + "/default")

    def names_written() -> int:
        try:
            return client.execute(f"SELECT uniqExact(name) FROM `{unique_name}`.metric_names")[0][0]
        except Exception:
            return 0

    # 50 names, 10 steps each, in five batches.
    produce(kafka_bootstrap, topic, [_batch([f"m{i}" for i in range(b, b + 10)], range(10)) for b in range(0, 50, 10)])
    first = IngestProcess(args, tmp_path / "first.log").start()
    try:
        wait_until(lambda: names_written() == 50, timeout_s=90, what="50 metric names")
    finally:
        first.kill()  # its in-memory counters die with it
    # A fresh worker must rebuild the counters from ClickHouse: m50 and m51 are names 51 and 52.
    produce(kafka_bootstrap, topic, [_batch(["m3", "m50", "m49", "m51"], range(10, 30))])
    second = IngestProcess(args, tmp_path / "second.log").start()
    try:
        wait_until(lambda: client.execute(
            f"SELECT count() FROM `{unique_name}`.rejected_events WHERE reason = 'too_many_metric_names'")[0][0] >= 2
            if names_written() else False, timeout_s=90, what="the rejections")
        wait_until(lambda: client.execute(
            f"SELECT count() FROM `{unique_name}`.metric_scalars FINAL WHERE name = 'm49'")[0][0] == 30,
            timeout_s=60, what="m49's points")
        assert second.stop() == 0, second.output()
    finally:
        second.kill()
    per_name = dict(client.execute(
        f"SELECT name, count() FROM `{unique_name}`.metric_scalars FINAL GROUP BY name"))
    assert len(per_name) == 50 and "m50" not in per_name and "m51" not in per_name
    assert per_name["m3"] == 30 and per_name["m49"] == 30
    assert all(n == 10 for name, n in per_name.items() if name not in ("m3", "m49"))
    rejected = client.execute(
        f"SELECT reason, detail FROM `{unique_name}`.rejected_events FINAL WHERE run_id = 'run_limits' ORDER BY item")
    assert [r[0] for r in rejected] == ["too_many_metric_names"] * 2
    assert "m50" in rejected[0][1] and "20 points" in rejected[0][1]
    client.execute(f"DROP DATABASE IF EXISTS `{unique_name}`")
    client.disconnect()
