"""SDK benchmark: the cost of ``run.log(name, float)`` with the Kafka transport active.

    .venv/bin/python bench/bench_sdk.py [--kafka 127.0.0.1:9092] [--calls 1000000] [--outage-seconds 15]

Prints, for issue 4's goals:

- median and p99 of one ``run.log`` call (ns; the timer's own cost is measured and subtracted);
- calls per second from one thread (a tight loop, the emitter thread and Kafka producer competing for the GIL);
- bytes per buffered point (tracemalloc over one full in-memory segment);
- the worst single call while a private broker is stopped for ``--outage-seconds``
  (started on free ports with deploy/local/kafka.sh; skipped with ``--outage-seconds 0``),
  and whether every point logged through the outage arrived.

Goals: median <= 2 us, p99 <= 20 us, >= 500,000 calls/s, <= 32 B/point, worst call < 50 ms during the outage.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from producers import Experiment, Workspace  # noqa: E402


def _workspace(kafka: str, home: Path, **options: object) -> Workspace:
    return Workspace(kafka=kafka, topic=f"bench_sdk_{uuid.uuid4().hex[:10]}", home=home,
                     install_signal_handlers=False, **options)


def per_call_latency(kafka: str, home: Path, calls: int) -> dict[str, float]:
    """Median/p99/max of single calls, each timed with perf_counter_ns."""
    ws = _workspace(kafka, home)
    run = Experiment(ws, "bench").start_logging()
    run.log("loss", 0.0)
    ws.flush(30)
    clock = time.perf_counter_ns
    overhead = []
    for _ in range(100_000):
        t0 = clock()
        overhead.append(clock() - t0)
    timer = statistics.median(overhead)
    samples = [0] * calls
    log = run.log
    gc.disable()  # a collection pause is not the SDK's cost (the loop allocates nothing that survives)
    try:
        for i in range(calls):
            t0 = clock()
            log("loss", 0.5)
            samples[i] = clock() - t0
    finally:
        gc.enable()
    run.complete()
    ws.close()
    samples.sort()
    return {
        "timer_ns": timer,
        "median_ns": samples[len(samples) // 2] - timer,
        "p99_ns": samples[int(len(samples) * 0.99)] - timer,
        "p999_ns": samples[int(len(samples) * 0.999)] - timer,
        "max_ns": samples[-1] - timer,
    }


def throughput(kafka: str, home: Path, calls: int) -> dict[str, float]:
    """Calls per second of a tight loop, and the time until every point is acknowledged."""
    ws = _workspace(kafka, home)
    run = Experiment(ws, "bench").start_logging()
    run.log("loss", 0.0)
    ws.flush(30)
    log = run.log
    t0 = time.perf_counter()
    for _ in range(calls):
        log("loss", 0.5)
    elapsed = time.perf_counter() - t0
    ok = ws.flush(120)
    delivered = time.perf_counter() - t0
    run.complete()
    ws.close()
    return {"calls_per_s": calls / elapsed, "delivered_s": delivered, "delivered": float(ok)}


def bytes_per_point(points: int = 50_000) -> float:
    """Memory held by buffered points: one full segment, nothing sent (an in-memory transport that holds)."""
    from producers.testing import InMemoryTransport

    transport = InMemoryTransport()
    ws = Workspace(transport=transport, install_signal_handlers=False, linger_ms=600_000, batch_points=points)
    run = Experiment(ws, "bench").start_logging()
    run.log("loss", 0.0)
    ws.flush(10)
    transport.hold()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(points - 1):
        run.log("loss", 0.5)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    transport.release()
    ws.close(10)
    return (after - before) / (points - 1)


def outage(kafka_port: int | None, seconds: float) -> dict[str, float]:
    """Log in a tight loop while a private broker is stopped for ``seconds``; report the worst call."""
    from stack import KafkaInstance

    state = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    broker = KafkaInstance(kafka_port, state_dir=state)
    broker.start()
    home = Path(tempfile.mkdtemp(prefix="bench-home-"))
    try:
        ws = _workspace(broker.bootstrap, home, stall_timeout_s=2.0, connect_timeout_s=2.0)
        run = Experiment(ws, "bench").start_logging()
        run.log("loss", 0.0)
        ws.flush(30)
        log = run.log
        clock = time.perf_counter_ns
        worst = 0
        calls = 0
        stopping = threading.Event()

        def stop_then_start() -> None:
            broker.stop()
            stopping.set()
            time.sleep(seconds)
            broker.start()

        helper = threading.Thread(target=stop_then_start)
        helper.start()
        stopping.wait(60)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for _ in range(1000):
                t0 = clock()
                log("loss", 0.5)
                took = clock() - t0
                if took > worst:
                    worst = took
            calls += 1000
            time.sleep(0.0005)  # a training loop does other work between steps
        helper.join()
        transport = ws.emitter._transport
        trips = transport.trips  # type: ignore[union-attr]
        t0 = time.perf_counter()
        # flush() is satisfied by the outbox (durable); "delivered" here means back in Kafka.
        ws.flush(300)
        while transport.spooling and time.perf_counter() - t0 < 300:  # type: ignore[union-attr]
            time.sleep(0.05)
        delivered = ws.flush(300) and not transport.spooling  # type: ignore[union-attr]
        drain = time.perf_counter() - t0
        run.complete()
        ws.close(60)
        return {"worst_ms": worst / 1e6, "calls": float(calls), "trips": float(trips), "delivered": float(delivered),
                "drain_s": drain}
    finally:
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kafka", default=os.environ.get("RUNSTREAM_KAFKA", "127.0.0.1:9092"))
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--outage-seconds", type=float, default=15.0)
    parser.add_argument("--outage-port", type=int, default=None, help="private broker port (default: a free one)")
    args = parser.parse_args()
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    home = Path(tempfile.mkdtemp(prefix="bench-sdk-"))

    latency = per_call_latency(args.kafka, home, args.calls)
    print(f"run.log(name, float), Kafka at {args.kafka}, {args.calls:,} timed calls "
          f"(timer overhead {latency['timer_ns']:.0f} ns subtracted):")
    print(f"  median {latency['median_ns']:.0f} ns   p99 {latency['p99_ns']:.0f} ns   "
          f"p99.9 {latency['p999_ns']:.0f} ns   max {latency['max_ns'] / 1e6:.2f} ms")
    rate = throughput(args.kafka, home, args.calls)
    print(f"  one thread: {rate['calls_per_s']:,.0f} calls/s; all {args.calls:,} points acknowledged by Kafka "
          f"{rate['delivered_s']:.2f} s after the first call ({'ok' if rate['delivered'] else 'NOT delivered'})")
    print(f"  buffered: {bytes_per_point():.1f} bytes/point")
    if args.outage_seconds > 0:
        result = outage(args.outage_port, args.outage_seconds)
        print(f"  broker stopped {args.outage_seconds:g} s: worst single call {result['worst_ms']:.2f} ms over "
              f"{result['calls']:,.0f} calls; transport tripped {result['trips']:.0f}x to the outbox; "
              f"{'all delivered' if result['delivered'] else 'NOT all delivered'} "
              f"to Kafka ({result['drain_s']:.1f} s after the broker answered again)")


if __name__ == "__main__":
    main()
