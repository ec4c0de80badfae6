"""runstream's ingest side: events in, trustworthy time series out.

``runstream ingest`` (:mod:`runstream.ingest_cmd`) wires one :class:`consumers.worker.Worker`
per process (:mod:`consumers.service`): a source (:mod:`consumers.source`: Kafka
group or the local spool) -> decode (:mod:`consumers.decode`) -> checks
(:mod:`consumers.validate`) and per-run limits (:mod:`consumers.limits`) -> columnar
rows (:mod:`consumers.rows`) -> a store (:mod:`store`: ClickHouse or chDB),
with rejects to the dead letters (:mod:`consumers.dlq`). Offsets are committed only
after the store accepted a batch; rows carry their message identity, so re-deliveries
collapse: exactly once end to end.

The health exporter (:mod:`consumers.exporter`, :mod:`consumers.exporter_sources`)
lives here too: it reads Kafka's offsets and the store's system tables.
"""
