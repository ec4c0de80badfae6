"""runstream's benchmark suite (issue 8): ``make bench`` or ``python -m bench``.

One module per measurement, each timing real components on the real local stack:

- :mod:`bench.sdk`: ``run.log`` latency, calls/s (Kafka transport), memory per buffered point;
- :mod:`bench.peers`: the same loop in wandb (offline) and mlflow (default local store);
- :mod:`bench.codec`: Avro encode + decode of scalar batches;
- :mod:`bench.raw_kafka`, :mod:`bench.raw_clickhouse`: bare-client ceilings for the same bytes and rows;
- :mod:`bench.e2e`: producers -> broker -> ``runstream ingest`` -> ClickHouse, throughput and latency;
- :mod:`bench.queries`: leaderboard and curve queries on 10M points.

:mod:`bench.run` orchestrates them and :mod:`bench.results` (pure) summarises
trials and renders ``bench/results/latest.json`` and ``BENCHMARKS.md``.
``bench/bench_sdk.py`` is the older standalone SDK script (it adds a broker-outage run).
"""

__all__: list[str] = []
