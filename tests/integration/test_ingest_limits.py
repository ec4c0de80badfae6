"""Per-run limits on the real stack: the 51st metric name is rejected, the first 50 keep every point,
also when the worker that saw the first 50 names was killed and a fresh one takes over; a batch re-read by
the next owner is never counted twice."""

from __future__ import annotations

from pathlib import Path

from clickhouse_driver import Client

import schemas
from consumers.limits import RunLimiter, StoreCounterLoader
from consumers.message import RawMessage
from consumers.testing import ListSource, MemoryDeadLetters, create_topic, produce, wait_until
from consumers.worker import Worker
from runstream.testing import IngestProcess
from schemas import RunLimits, ScalarBatch
from schemas.settings import IngestSettings
from store import open_store

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


def _points(seq: int, steps: range) -> RawMessage:
    event = ScalarBatch(writer_id="w_redeliver", seq=seq, run_id="run_redeliver", experiment="limits", created_ms=1,
                        names=["loss"], descriptions=[""], name_idx=[0] * len(steps), steps=list(steps),
                        times_ms=list(steps), values=[0.5] * len(steps))
    return RawMessage("events/0", 0, seq, b"run_redeliver", schemas.encode(event), 1)


def _worker(store: object, messages: list[RawMessage]) -> Worker:
    config = IngestSettings(metrics_port=None, retry_initial_s=0.01, retry_max_s=0.05)
    limiter = RunLimiter(RunLimits(max_rows_per_metric=20), StoreCounterLoader(store))  # type: ignore[arg-type]
    return Worker(source=ListSource(messages), sink=store, limiter=limiter,  # type: ignore[arg-type]
                  dead_letters=MemoryDeadLetters(), config=config)


def test_a_redelivered_batch_is_not_counted_twice_by_the_next_owner(clickhouse_url: str, unique_name: str) -> None:
    # Issue 12, item 4: the worker that owned the run wrote a batch, then lost its commit to a rebalance; the
    # next owner loaded counts that already held the batch and counted it again as it re-read it, so a metric
    # near its row limit got points rejected as too_many_rows although they were stored.
    store = open_store(clickhouse_url.rsplit("/", 1)[0] + "/" + unique_name, Path("."))
    try:
        store.migrate()
        batch = [_points(1, range(0, 15))]
        first = _worker(store, batch)
        first.source.commit = lambda: None  # type: ignore[method-assign]  # the commit lost to the rebalance
        first.step()
        assert first.flush()
        nxt = _worker(store, batch + [_points(2, range(15, 20)), _points(3, range(20, 23))])
        while nxt.step():
            pass
        assert nxt.flush() and nxt.source.committed == 3
        rows = store.query("SELECT count() FROM {db}.metric_scalars FINAL WHERE run_id = 'run_redeliver'")
        assert rows[0][0] == 20  # every point up to the limit is stored
        rejected = store.query("SELECT reason, count() FROM {db}.rejected_events FINAL "
                               "WHERE run_id = 'run_redeliver' GROUP BY reason")
        assert rejected == [("too_many_rows", 1)]  # seq 3 only (one row per rejected group)
    finally:
        store.query("DROP DATABASE IF EXISTS {db}")
        store.close()
