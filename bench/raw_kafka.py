"""Ceiling: the SDK's bytes through the broker with bare kafka-python, no runstream code on the path.

Key: ``raw_kafka_points_per_s``. The same producer count and points as the e2e
measurement: each producer child sends the pickled messages the SDK emits for
its share (``bench.load messages``) with a bare ``KafkaProducer`` configured as
the SDK's transport (acks=all, idempotence, lz4, 1 MiB batches); one consumer
child (bare ``KafkaConsumer``, partitions assigned, 2 MiB fetches as ingest)
reads until it has every message. The clock runs from GO to the last message read.

Child side: ``python -m bench.raw_kafka produce|consume``.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import sys
import time
from pathlib import Path
from typing import Any

from .child import Child, emit, ready_then_wait, run_child

__all__ = ["measure", "prepare_messages"]


def prepare_messages(scratch: Path, producers: int, points: int) -> list[Path]:
    """One pickle of SDK messages per producer (``points`` each), made by the SDK itself."""
    files = []
    for i in range(producers):
        path = scratch / f"messages-{i}.pickle"
        if not path.exists():
            run_child("bench.load", ["messages", "--points", str(points), "--experiment", f"raw{i}",
                                     "--out", str(path)], timeout=300)
        files.append(path)
    return files


def measure(stack: Any, files: list[Path], *, trials: int, points_per_producer: int,
            partitions: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Trials of the bare-client rate (each trial on a fresh topic)."""
    total_messages = 0
    for f in files:
        with open(f, "rb") as fh:
            total_messages += len(pickle.load(fh))
    rates, details = [], []
    for t in range(trials):
        topic = stack.create_topic(stack.name(f"rawk{t}"), partitions)
        consumer = Child("bench.raw_kafka", ["consume", "--kafka", stack.kafka, "--topic", topic,
                                             "--messages", str(total_messages)])
        producers = [Child("bench.raw_kafka", ["produce", "--kafka", stack.kafka, "--topic", topic,
                                               "--file", str(f)]) for f in files]
        try:
            for c in (consumer, *producers):
                c.wait_ready()
            t0 = time.time()
            for c in (consumer, *producers):
                c.go()
            sent = [p.result() for p in producers]
            got = consumer.result()
        finally:
            for c in (consumer, *producers):
                c.kill()
        elapsed = got["done_at"] - t0
        rates.append(points_per_producer * len(files) / elapsed)
        details.append({"elapsed_s": elapsed, "produce_s": [s["elapsed_s"] for s in sent],
                        "consumer_cpu_s": got["cpu_s"], "producer_cpu_s": [s["cpu_s"] for s in sent]})
    return {"raw_kafka_points_per_s": rates}, {"messages": total_messages, "trials": details}


# -- child side ------------------------------------------------------------------------------------


def _produce(args: argparse.Namespace) -> dict[str, Any]:
    from kafka import KafkaProducer

    with open(args.file, "rb") as f:
        messages = pickle.load(f)
    producer = KafkaProducer(bootstrap_servers=args.kafka, acks="all", enable_idempotence=True,
                             compression_type="lz4", linger_ms=5, batch_size=1024 * 1024,
                             max_request_size=2 * 1024 * 1024)
    producer.partitions_for(args.topic)
    ready_then_wait()
    cpu0, t0 = time.process_time(), time.perf_counter()
    send = producer.send
    for key, value in messages:
        send(args.topic, key=key, value=value)
    producer.flush(300)
    elapsed = time.perf_counter() - t0
    producer.close()
    return {"elapsed_s": elapsed, "cpu_s": time.process_time() - cpu0, "messages": len(messages)}


def _consume(args: argparse.Namespace) -> dict[str, Any]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=args.kafka, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", max_partition_fetch_bytes=2 * 1024 * 1024)
    partitions = consumer.partitions_for_topic(args.topic) or set()
    while not partitions:
        time.sleep(0.1)
        partitions = consumer.partitions_for_topic(args.topic) or set()
    consumer.assign([TopicPartition(args.topic, p) for p in partitions])
    consumer.poll(timeout_ms=100)
    ready_then_wait()
    cpu0 = time.process_time()
    seen = 0
    nbytes = 0
    deadline = time.monotonic() + 300
    while seen < args.messages and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200, max_records=500).values():
            seen += len(records)
            nbytes += sum(len(r.value) for r in records)
    done_at = time.time()
    consumer.close()
    return {"done_at": done_at, "messages": seen, "bytes": nbytes, "cpu_s": time.process_time() - cpu0}


def _main(argv: list[str]) -> int:
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(prog="python -m bench.raw_kafka")
    parser.add_argument("mode", choices=["produce", "consume"])
    parser.add_argument("--kafka", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--messages", type=int)
    args = parser.parse_args(argv)
    emit(_produce(args) if args.mode == "produce" else _consume(args))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
