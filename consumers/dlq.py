"""Dead letters: messages (or parts of them) that will never be ingested, kept for a human.

Kafka mode: the original bytes go to the dead-letter topic
(``runstream.events.dlq``) under the original key, with headers ``reason``,
``detail``, ``source_topic``, ``source_partition``, ``source_offset`` and
``rejected_items``. Embedded mode: ``$RUNSTREAM_HOME/deadletter/`` holds one
``<source>@<offset>.msg`` file with the bytes and a ``.json`` beside it with the
same fields. Either way the worker also writes ``rejected_events`` rows, so
readers can tell why a metric is missing.

Dead letters are written before the batch's offsets are committed; a crash in
between may write one twice (the folder overwrites; the topic keeps both).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Protocol, Sequence

from schemas.kafka_client import kafka, refusal

from .errors import DeadLetterError
from .message import RawMessage

__all__ = ["DeadLetter", "DeadLetters", "FolderDeadLetters", "KafkaDeadLetters"]

log = logging.getLogger("runstream.ingest")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# The original bytes were accepted by the broker; headers add little. If the DLQ
# topic still refuses one, the tail is cut rather than blocking the partition.
_KAFKA_MAX_VALUE = 1_000_000


class DeadLetter(NamedTuple):
    """One message sent to the dead letters, and why (the first reason when several items failed)."""

    message: RawMessage
    reason: str
    detail: str
    rejected_items: int  # -1: the whole message


class DeadLetters(Protocol):
    """Where dead letters go. ``send`` returns once they are durable; raises ``DeadLetterError`` otherwise."""

    def send(self, letters: Sequence[DeadLetter]) -> None: ...

    def close(self) -> None: ...


def _fields(letter: DeadLetter, now_ms: int) -> dict[str, object]:
    m = letter.message
    return {
        "reason": letter.reason,
        "detail": letter.detail,
        "source_topic": m.topic,
        "source": m.source,
        "source_partition": m.partition,
        "source_offset": m.offset,
        "rejected_items": letter.rejected_items,
        "key": None if m.key is None else m.key.decode("utf-8", "replace"),
        "size": len(m.value),
        "dead_lettered_ms": now_ms,
    }


class FolderDeadLetters:
    """Embedded mode: one file pair per dead letter under ``directory``."""

    def __init__(self, directory: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self._clock = clock

    def send(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            now_ms = int(self._clock() * 1000)
            for letter in letters:
                m = letter.message
                stem = f"{_UNSAFE.sub('_', m.source)}@{m.offset}"
                self._write(self.directory / f"{stem}.msg", m.value)
                meta = json.dumps(_fields(letter, now_ms), indent=1, ensure_ascii=False).encode()
                self._write(self.directory / f"{stem}.json", meta)
        except OSError as exc:
            raise DeadLetterError(f"cannot write dead letters to {self.directory}: {exc}") from exc

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def close(self) -> None:
        pass


class KafkaDeadLetters:
    """Kafka mode: a producer for the dead-letter topic (created lazily, flushed on every ``send``)."""

    def __init__(self, options: Mapping[str, Any] | str, topic: str, *, timeout_s: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        """``options``: kafka-python's connection settings (``bootstrap_servers``, TLS/SASL), or a bootstrap."""
        self._options = dict(options) if not isinstance(options, str) else {
            "bootstrap_servers": [b.strip() for b in options.split(",")]}
        self.bootstrap = ",".join(self._options["bootstrap_servers"])
        self.topic = topic
        self._timeout_s = timeout_s
        self._clock = clock
        self._producer: object | None = None

    def _get(self) -> Any:
        if self._producer is None:
            try:
                # Idempotence named explicitly: kafka-python 3 turns it off, with only a log line,
                # when other settings conflict with its defaults; a broker failover must not double a letter.
                self._producer = kafka.KafkaProducer(
                    **self._options, acks="all", enable_idempotence=True, linger_ms=5, retries=5,
                    max_request_size=2 * 1024 * 1024, client_id="runstream-ingest-dlq",
                )
            except Exception as exc:
                denied = refusal(exc, "the dead-letter producer's login")
                if denied is not None:
                    raise denied from exc
                raise DeadLetterError(f"dead-letter producer cannot reach Kafka at {self.bootstrap}: {exc}") from exc
        return self._producer

    def send(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        producer = self._get()
        now_ms = int(self._clock() * 1000)
        try:
            futures = []
            for letter in letters:
                m = letter.message
                f = _fields(letter, now_ms)
                headers = [(k, str(f[k]).encode("utf-8", "replace"))
                           for k in ("reason", "detail", "source_topic", "source_partition", "source_offset",
                                     "rejected_items")]
                value = m.value
                if len(value) > _KAFKA_MAX_VALUE:
                    headers.append(("truncated_from", str(len(value)).encode()))
                    value = value[:_KAFKA_MAX_VALUE]
                futures.append(producer.send(self.topic, key=m.key, value=value, headers=headers))
            producer.flush(timeout=self._timeout_s)
            for fut in futures:
                fut.get(timeout=self._timeout_s)
        except DeadLetterError:
            raise
        except Exception as exc:
            denied = refusal(exc, f"writing dead letters to {self.topic!r}")
            if denied is not None:
                raise denied from exc
            raise DeadLetterError(f"dead-letter topic {self.topic!r} did not take {len(letters)} message(s): {exc}") from exc

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=5)  # type: ignore[attr-defined]
            except Exception:  # closing must not mask the worker's own exit
                log.debug("dead-letter producer close failed", exc_info=True)
            self._producer = None
