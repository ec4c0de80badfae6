"""Where events come from: a Kafka consumer group, or the local spool.

Both sources hand out :class:`RawMessage` batches and remember how far they
handed out; :meth:`Source.commit` makes that position durable and is called by
the worker only after the sink accepted everything handed out so far. After a
crash the uncommitted tail is read again, and ClickHouse collapses the repeats.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol

from schemas.kafka_client import ensure_topics as create_missing_topics
from schemas.kafka_client import kafka, refusal
from schemas.spool import SEGMENT_MAGIC, SpoolCorruption, SpoolRecord, list_segments, read_segment, seal_abandoned

from .errors import SourceError
from .message import RawMessage

__all__ = ["Source", "KafkaSource", "SpoolSource", "ensure_topics", "SPOOL_ERROR_REASONS"]

log = logging.getLogger("runstream.ingest")

SPOOL_ERROR_REASONS = frozenset({"spool_bad_crc", "spool_bad_length", "spool_truncated", "spool_bad_segment_magic"})
"""``RawMessage.source_error`` values: spool bytes that could not be framed."""


class Source(Protocol):
    """A log of messages with a committable position."""

    def poll(self, max_records: int, timeout_s: float) -> list[RawMessage]:
        """Up to ``max_records`` messages, waiting at most ``timeout_s`` for the first; [] while paused."""
        ...

    def commit(self) -> None:
        """Make the position after every message handed out so far durable."""
        ...

    def rewind(self) -> None:
        """Forget messages handed out since the last commit: they will be handed out again."""
        ...

    def pause(self) -> None:
        """Stop fetching (the sink is down; memory must stay bounded)."""
        ...

    def resume(self) -> None: ...

    def idle(self) -> None:
        """Keep the source alive while paused (Kafka: group membership)."""
        ...

    def backlog_bytes(self) -> int | None:
        """Bytes not yet committed, where the source can tell (the spool); else None."""
        ...

    @property
    def ready(self) -> bool:
        """True once the source can deliver (Kafka: partitions assigned)."""
        ...

    def close(self) -> None: ...


# -- Kafka ---------------------------------------------------------------------------------------


def ensure_topics(options: Mapping[str, Any] | str, topics: dict[str, int], *, replication_factor: int = -1,
                  timeout_s: float = 30.0) -> list[str]:
    """Create missing topics (auto-creation is off on runstream's brokers); returns the ones created.

    ``options``: kafka-python's connection settings (``bootstrap_servers``, TLS/SASL), or a bootstrap string.
    A refusal (an ACL) raises :class:`~schemas.errors.AccessDenied`, which nobody retries.
    """
    if isinstance(options, str):
        options = {"bootstrap_servers": [b.strip() for b in options.split(",")]}
    try:
        return create_missing_topics(options, topics, replication_factor=replication_factor, timeout_s=timeout_s,
                                     client_id="runstream-ingest-admin")
    except Exception as exc:
        denied = refusal(exc, f"making sure topics {sorted(topics)} exist (create them as the admin, or "
                              "grant this principal CREATE on them)")
        if denied is not None:
            raise denied from exc
        raise SourceError(f"cannot create topics {sorted(topics)} on {options['bootstrap_servers']}: {exc}") from exc


def _source_error(exc: BaseException, what: str) -> Exception:
    """A refusal (an ACL, a login) as :class:`~schemas.errors.AccessDenied`, which no worker retries; else SourceError."""
    denied = refusal(exc, f"{what.replace(' failed', '')} (group and topic ACLs of this principal)")
    return denied if denied is not None else SourceError(f"{what}: {exc}")


class KafkaSource:
    """A member of a consumer group: no auto-commit, commits only what the worker says landed.

    Rebalances never block kafka-python's IO thread (which sends the
    heartbeats): the rebalance listener only records what happened. The
    worker settles its batch on its own thread, in :meth:`poll`:

    - before the rebalance: when the coordinator asks this member to rejoin
      (another member joined or left) while messages are handed out and not
      committed, ``on_revoke`` runs first, before the join. The worker
      flushes and commits within its rebalance budget (or drops the batch,
      which is then read again), while this member still owns its partitions
      and keeps heartbeating. When the rejoin is noticed from inside the
      worker's own flush (:meth:`idle`), :meth:`idle` does not poll, so the
      join waits until that flush is done or given up (within the budget).
      The heartbeat that announces the rejoin lands on the IO thread at any
      moment, also between that check and ``consumer.poll``'s own; so while
      a batch is handed out, ``consumer.poll`` on the worker's thread is told
      no rejoin is needed (for up to the session timeout), and the join
      starts only once the batch is settled. (Started earlier, the join
      would turn the member's state to rebalancing, and kafka-python refuses
      every commit from then on: the whole batch would be read again.);
    - after it, only when the worker did not settle within the session
      timeout, or on a kafka-python without the coordinator internals used
      here: partitions that moved take their handed-out messages with them
      (the next owner reads them again from the last commit; the rows
      collapse downstream), partitions that stayed keep their position, and
      ``on_revoke`` runs right after the poll, so the worker flushes what it
      holds and forgets per-run state.

    Either way an offset is committed only for a partition this member owns,
    after the worker wrote everything up to it: a partition's next owner
    starts at the last commit, so it may read again what this member wrote
    but never skips what this member did not write.
    """

    def __init__(self, *, bootstrap: str | None = None, options: Mapping[str, Any] | None = None, topic: str,
                 group: str, on_revoke: Callable[[], None],
                 session_timeout_ms: int = 10_000, client_id: str = "runstream-ingest") -> None:
        self._kafka = kafka
        self.topic = topic
        self._group = group
        self._on_revoke = on_revoke
        self._positions: dict[Any, int] = {}
        self._paused = False
        # First offset handed out since the last commit, per partition: where rewind() goes back
        # to. Known locally, because asking the broker (committed()) costs a round trip.
        self._handed_from: dict[Any, int] = {}
        # Set by the listener (on the IO thread) when a rebalance took a partition of handed-out
        # messages; read on the worker's thread after consumer.poll returns.
        self._moved_during_poll = False
        # Joins held back while a batch is handed out: the thread inside our consumer.poll, the
        # coordinator's own rejoin check, and since when a rejoin has been held back (for how long).
        self._holding_thread: int | None = None
        self._need_rejoin: Callable[[], bool] | None = None
        self._held_since: float | None = None
        self._hold_limit_s = session_timeout_ms / 1000
        if (bootstrap is None) == (options is None):
            raise ValueError("KafkaSource needs bootstrap or options (kafka-python's, with bootstrap_servers)")
        self._consumer_options: dict[str, Any] = dict(
            **(options if options is not None else {"bootstrap_servers": bootstrap}),
            group_id=group,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            # Members learn of a rebalance from a heartbeat answer: a short interval lets a new
            # worker's join complete soon (every member must rejoin first).
            heartbeat_interval_ms=max(250, session_timeout_ms // 20),
            max_poll_interval_ms=600_000,
            max_partition_fetch_bytes=2 * 1024 * 1024,
            # A group leader that assigned while its metadata lacked the topic hands out
            # nothing and only rejoins on the next metadata refresh (default: 5 minutes).
            # Refreshing every 10 s bounds that stall, and a new partition is picked up soon.
            metadata_max_age_ms=10_000,
        )
        try:
            self._consumer = self._join()
        except Exception as exc:
            where = self._consumer_options["bootstrap_servers"]
            raise _source_error(exc, f"cannot join group {group!r} on {where}") from exc

    def _join(self) -> Any:
        """A new consumer subscribed to the topic, with this source's rebalance listener."""
        kafka: Any = self._kafka
        source = self

        class _Listener(kafka.ConsumerRebalanceListener):  # type: ignore[misc]
            # Runs on kafka-python's IO thread: records, never waits (heartbeats go out from there).
            def on_partitions_revoked(self, revoked: Any) -> None:
                log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

            def on_partitions_assigned(self, assigned: Any) -> None:
                log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))
                source._keep_only(set(assigned))
                if source._paused and assigned:
                    consumer.pause(*assigned)

        consumer = kafka.KafkaConsumer(**self._consumer_options)
        self._hold_joins_while_handed_out(consumer)
        try:
            consumer.subscribe([self.topic], listener=_Listener())
            # Fresh metadata after subscribing, before the first join: the coordinator then assigns
            # from the topic's partitions and records them. Without it the first join assigns from
            # a snapshot taken before the subscription (empty) and the next metadata answer forces a
            # second rebalance of the whole group a moment later.
            consumer.topics()
        except BaseException:
            consumer.close(autocommit=False)
            raise
        return consumer

    def _hold_joins_while_handed_out(self, consumer: Any) -> None:
        """Make ``consumer.poll`` on the worker's thread leave a pending rejoin to :meth:`poll` while a batch
        is handed out (up to the session timeout), so the batch is settled first; other threads (the IO
        thread's join loop) see the coordinator's real answer."""
        coordinator: Any = getattr(consumer, "_coordinator", None)
        need_rejoin = getattr(coordinator, "need_rejoin", None)
        if not callable(need_rejoin):
            log.debug("kafka-python's coordinator has no need_rejoin(): rejoins are settled after the poll")
            return
        self._need_rejoin = need_rejoin
        source = self

        def need_rejoin_unless_a_batch_is_handed_out() -> bool:
            needed = bool(need_rejoin())
            if not needed or source._holding_thread != threading.get_ident():
                return needed
            if getattr(coordinator, "rejoining", False):
                return needed  # a join already under way (its heartbeats are off): let it finish
            now = time.monotonic()
            if source._held_since is None:
                source._held_since = now
            return now - source._held_since >= source._hold_limit_s  # the worker is past its budget: join

        coordinator.need_rejoin = need_rejoin_unless_a_batch_is_handed_out

    def _keep_only(self, assigned: set[Any]) -> None:
        """After a rebalance: forget what was handed out from partitions that are no longer ours.

        A partition that stayed keeps its fetch position (kafka-python keeps it
        across an eager rebalance), so its handed-out messages stay committable.
        """
        self._held_since = None
        moved = [tp for tp in self._handed_from if tp not in assigned]
        for tp in moved:
            self._handed_from.pop(tp, None)
            self._positions.pop(tp, None)
        if moved:
            self._moved_during_poll = True

    def _rebalance_pending(self) -> bool:
        """True when the group coordinator asked this member to rejoin (the next consumer.poll joins)."""
        if self._need_rejoin is None:  # a kafka-python without this internal: settled after the poll
            return False
        try:
            return bool(self._need_rejoin())
        except Exception:
            log.debug("need_rejoin() failed", exc_info=True)
            return False

    _HOLDING_POLL_S = 0.05

    def poll(self, max_records: int, timeout_s: float) -> list[RawMessage]:
        if self._handed_from and self._rebalance_pending():
            self._on_revoke()  # the worker settles its batch here, on its own thread, before the join
        batches = self._consumer_poll(max_records, timeout_s)
        if self._moved_during_poll:
            self._moved_during_poll = False
            self._on_revoke()
        out: list[RawMessage] = []
        if self._paused and batches:
            # A rebalance handed us unpaused partitions while paused: give the records back.
            for tp, records in batches.items():
                self._consumer.seek(tp, records[0].offset)
            self._consumer.pause(*batches)
            return out
        for tp, records in batches.items():
            source = f"{tp.topic}/{tp.partition}"
            for r in records:
                out.append(RawMessage(source, tp.partition, r.offset, r.key, r.value if r.value is not None else b"",
                                      r.timestamp if r.timestamp is not None else 0))
            self._positions[tp] = records[-1].offset + 1
            self._handed_from.setdefault(tp, records[0].offset)
        return out

    def _consumer_poll(self, max_records: int, timeout_s: float) -> Any:
        """``consumer.poll``; while a batch is handed out, in short calls with the rejoin checked between.

        While a batch is handed out ``consumer.poll`` does not join (see
        :meth:`_hold_joins_while_handed_out`); the short calls let the check
        here see the announcement at once, so the worker settles its batch
        and the group waits for this member no longer than that takes.
        """
        if not self._handed_from:
            return self._poll_once(max_records, timeout_s)
        deadline = time.monotonic() + timeout_s
        while True:
            batches = self._poll_once(max_records, 0.0)
            remaining = deadline - time.monotonic()
            if batches or remaining <= 0 or self._moved_during_poll:
                return batches
            if self._rebalance_pending():
                self._on_revoke()
                if not self._handed_from:
                    return self._poll_once(max_records, remaining)
            time.sleep(min(self._HOLDING_POLL_S, remaining))

    def _poll_once(self, max_records: int, timeout_s: float) -> Any:
        self._holding_thread = threading.get_ident() if self._handed_from else None
        try:
            return self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except Exception as exc:
            raise _source_error(exc, "Kafka poll failed") from exc
        finally:
            self._holding_thread = None

    def commit(self) -> None:
        if not self._positions:
            return
        k = self._kafka
        assigned = self._consumer.assignment()
        offsets = {tp: k.structs.OffsetAndMetadata(off, "", -1) for tp, off in self._positions.items()
                   if tp in assigned}
        self._positions.clear()
        self._handed_from.clear()
        self._held_since = None
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets)
        except (k.errors.CommitFailedError, k.errors.RebalanceInProgressError, k.errors.IllegalStateError) as exc:
            # The rows are in ClickHouse; whoever owns the partition next re-reads them and they collapse.
            log.warning("offset commit lost to a rebalance (%s); those messages will be read again", exc)
        except Exception as exc:
            raise _source_error(exc, "Kafka offset commit failed") from exc

    def rewind(self) -> None:
        for tp, offset in self._handed_from.items():
            try:
                self._consumer.seek(tp, offset)
            except Exception:  # partition no longer ours: the next owner starts at the committed offset
                log.debug("rewind of %s skipped", tp, exc_info=True)
        self._handed_from.clear()
        self._positions.clear()
        self._held_since = None

    def pause(self) -> None:
        self._paused = True
        assigned = self._consumer.assignment()
        if assigned:
            self._consumer.pause(*assigned)

    def resume(self) -> None:
        self._paused = False
        paused = self._consumer.paused()
        if paused:
            self._consumer.resume(*paused)

    def idle(self) -> None:
        """Keep the membership alive while the worker retries (partitions paused).

        With a rebalance pending and a batch handed out, it does not poll
        (that would join mid-flush): it tells the worker (``on_revoke``),
        whose flush then ends within its rebalance budget.
        """
        if self._handed_from and self._rebalance_pending():
            self._on_revoke()
            return
        self.poll(1, 0.0)

    @property
    def ready(self) -> bool:
        return bool(self._consumer.assignment())

    def backlog_bytes(self) -> int | None:
        return None

    def close(self) -> None:
        try:
            self._consumer.close(autocommit=False)
        except Exception:
            log.debug("consumer close failed", exc_info=True)


# -- spool ---------------------------------------------------------------------------------------

_SEGMENT = re.compile(r"(?P<writer>.+)-(?P<number>\d+)")


@dataclass(slots=True)
class _Segment:
    stem: str
    writer: str
    number: int
    path: Path


def _scan(spool_dir: Path) -> list[_Segment]:
    out = []
    for path in list_segments(spool_dir):
        m = _SEGMENT.fullmatch(path.stem)
        if m:
            out.append(_Segment(path.stem, m["writer"], int(m["number"]), path))
    out.sort(key=lambda s: (s.writer, s.number))
    return out


class SpoolSource:
    """Reads ``spool_dir`` segments in order per writer; one process at a time (the home lock's holder).

    The checkpoint (``state_dir/spool-checkpoint.json``, replaced atomically)
    holds the committed offset of every segment still present; fully ingested
    sealed segments are deleted after the commit that covers them.
    """

    _RESCAN_S = 0.25

    def __init__(self, spool_dir: Path, state_dir: Path, *, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.spool_dir = Path(spool_dir)
        self.state_dir = Path(state_dir)
        self._checkpoint_path = self.state_dir / "spool-checkpoint.json"
        self._sleep = sleep
        self._monotonic = monotonic
        self._committed: dict[str, int] = self._load_checkpoint()
        self._pending: dict[str, int] = {}
        self._iters: dict[str, Iterator[SpoolRecord | SpoolCorruption]] = {}
        self._done: set[str] = set()  # sealed and read to the end (pending)
        self._segments: list[_Segment] = []
        self._last_scan = float("-inf")
        self._paused = False

    # checkpoint

    def _load_checkpoint(self) -> dict[str, int]:
        try:
            data = json.loads(self._checkpoint_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise SourceError(f"unreadable spool checkpoint {self._checkpoint_path}: {exc}") from exc
        segments = data.get("segments") if isinstance(data, dict) else None
        if not isinstance(segments, dict):
            raise SourceError(f"spool checkpoint {self._checkpoint_path} has no 'segments' object")
        return {str(k): int(v) for k, v in segments.items()}

    def _save_checkpoint(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._checkpoint_path.with_name(self._checkpoint_path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "segments": self._committed}, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._checkpoint_path)
        dir_fd = os.open(self.state_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _offset(self, stem: str) -> int:
        return self._pending.get(stem, self._committed.get(stem, 0))

    # reading

    def _rescan(self) -> None:
        seal_abandoned(self.spool_dir)
        self._segments = _scan(self.spool_dir)
        self._last_scan = self._monotonic()

    def _active(self) -> list[_Segment]:
        """Per writer, the first segment not read to the end (later ones wait: per-writer order)."""
        active: list[_Segment] = []
        seen: set[str] = set()
        for seg in self._segments:
            if seg.writer in seen or seg.stem in self._done:
                continue
            seen.add(seg.writer)
            active.append(seg)
        return active

    def _open(self, seg: _Segment) -> Iterator[SpoolRecord | SpoolCorruption] | None:
        for path in (seg.path, seg.path.with_suffix(".seg")):
            try:
                it = read_segment(path, self._offset(seg.stem))
                first = next(it, None)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise SourceError(f"cannot read spool segment {path}: {exc}") from exc
            seg.path = path
            if first is None:
                return None
            head: SpoolRecord | SpoolCorruption = first

            def chain(first: SpoolRecord | SpoolCorruption = head,
                      rest: Iterator[SpoolRecord | SpoolCorruption] = it) -> Iterator[SpoolRecord | SpoolCorruption]:
                yield first
                yield from rest

            return chain()
        return None

    def _read(self, seg: _Segment, budget: int, out: list[RawMessage]) -> None:
        it = self._iters.get(seg.stem)
        if it is None:
            try:
                size = seg.path.stat().st_size
            except FileNotFoundError:
                size = -1  # renamed .open -> .seg a moment ago; _open looks for both
            if 0 <= size <= self._offset(seg.stem):
                self._maybe_done(seg)
                return  # nothing new: don't re-read a live segment on every poll
            it = self._open(seg)
            if it is None:
                if self._offset(seg.stem) < len(SEGMENT_MAGIC) <= size:
                    self._pending[seg.stem] = len(SEGMENT_MAGIC)  # a valid header and no record yet
                self._maybe_done(seg)
                return
            self._iters[seg.stem] = it
        for _ in range(budget):
            item = next(it, None)
            if item is None:
                del self._iters[seg.stem]
                self._maybe_done(seg)
                return
            if isinstance(item, SpoolRecord):
                out.append(RawMessage(f"{seg.stem}", 0, item.offset, item.key, item.value))
                self._pending[seg.stem] = item.next_offset
            else:
                reason = f"spool_{item.reason}"
                if reason not in SPOOL_ERROR_REASONS:
                    reason = "spool_bad_length"
                log.warning("spool segment %s: %s at byte %d; the rest goes to the dead letters", seg.path.name,
                            item.reason, item.offset)
                out.append(RawMessage(f"{seg.stem}", 0, item.offset, None, item.data, source_error=reason))
                self._pending[seg.stem] = item.offset + len(item.data)
                del self._iters[seg.stem]
                self._maybe_done(seg)
                return

    def _maybe_done(self, seg: _Segment) -> None:
        if seg.path.suffix == ".seg" or (seg.path.with_suffix(".seg").exists() and not seg.path.exists()):
            # Sealed: nothing will be appended. Re-check the size so a seal that raced our read is seen.
            path = seg.path.with_suffix(".seg")
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                return
            if self._offset(seg.stem) >= size or size < len(SEGMENT_MAGIC):
                self._done.add(seg.stem)

    def poll(self, max_records: int, timeout_s: float) -> list[RawMessage]:
        deadline = self._monotonic() + timeout_s
        while True:
            if self._paused:
                return []
            if self._monotonic() - self._last_scan >= self._RESCAN_S or not self._segments:
                self._rescan()
            out: list[RawMessage] = []
            done_before = len(self._done)
            active = self._active()
            if active:
                share = max(1, max_records // len(active))
                for seg in active:
                    if len(out) >= max_records:
                        break
                    self._read(seg, min(share, max_records - len(out)), out)
            if out:
                return out
            if len(self._done) > done_before:
                continue  # a segment ended: its writer's next one may have records now
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                return out
            self._sleep(min(remaining, 0.05))
            self._last_scan = float("-inf")  # nothing found: look again for new segments

    def commit(self) -> None:
        if not self._pending and not self._done:
            return
        self._committed.update(self._pending)
        self._pending.clear()
        removable = [s for s in self._segments if s.stem in self._done]
        try:
            self._save_checkpoint()
            for seg in removable:
                try:
                    os.unlink(seg.path.with_suffix(".seg"))
                except FileNotFoundError:
                    pass
                self._committed.pop(seg.stem, None)
                self._done.discard(seg.stem)
            if removable:
                self._segments = [s for s in self._segments if s.stem not in {r.stem for r in removable}]
                self._save_checkpoint()
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise SourceError(f"disk full writing the spool checkpoint in {self.state_dir}") from exc
            raise SourceError(f"cannot write the spool checkpoint {self._checkpoint_path}: {exc}") from exc

    def rewind(self) -> None:
        self._pending.clear()
        self._iters.clear()
        self._done.clear()

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def idle(self) -> None:
        pass

    ready = True

    def end_positions(self) -> dict[str, int]:
        """Every segment's size now: what :meth:`covers` later checks was ingested (thread-safe: files only)."""
        positions: dict[str, int] = {}
        for path in list_segments(self.spool_dir):
            try:
                positions[path.stem] = path.stat().st_size
            except FileNotFoundError:
                continue  # ingested and removed meanwhile
        return positions

    def covers(self, positions: Mapping[str, int]) -> bool:
        """True when every segment of ``positions`` is committed up to its size there, or removed (all read)."""
        for stem, size in positions.items():
            if self._committed.get(stem, 0) >= size:
                continue
            if any((self.spool_dir / f"{stem}{suffix}").exists() for suffix in (".open", ".seg")):
                return False
        return True

    def has_uncommitted(self) -> bool:
        """True when records were read (or segments finished) since the last commit."""
        return bool(self._pending or self._done)

    def backlog_bytes(self) -> int | None:
        total = 0
        for path in list_segments(self.spool_dir):
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            total += max(0, size - self._committed.get(path.stem, 0))
        return total

    def close(self) -> None:
        self._iters.clear()
