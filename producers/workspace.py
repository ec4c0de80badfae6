"""The Workspace: where a process's runs send their events, and where they are read back from.

``Workspace()`` takes its settings from the arguments and the environment;
``Workspace.from_config()`` also reads ``runstream.json`` (found from the
working directory upward, or ``$RUNSTREAM_CONFIG``). Nothing configured is
the embedded default: events go to the spool under ``$RUNSTREAM_HOME/spool``.

The emitter (one background thread, one transport) starts with the first run
and is shared by every run of the workspace.
"""

from __future__ import annotations

import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Self

from schemas.errors import ConfigurationError
from schemas.settings import WorkspaceSettings, find_config

from .emitter import Emitter, RunState, TransportFactory
from .transport import EventTransport, SpoolTransport

if TYPE_CHECKING:
    from store import RunReader

__all__ = ["Workspace"]


class Workspace:
    """Settings plus the lazily started emitter shared by this workspace's runs.

    Arguments left out (None) come from ``RUNSTREAM_KAFKA``,
    ``RUNSTREAM_CLICKHOUSE``, ``RUNSTREAM_HOME`` and ``RUNSTREAM_TOPIC``;
    ``**options`` are any other :class:`WorkspaceSettings` field (``limits=``,
    ``linger_ms=``, ``max_buffer_bytes=``...). Or pass a built ``settings=``.

    ``transport`` replaces the configured one (an instance, or a factory
    ``writer_id -> transport`` so forked children get their own); ``clock``
    (epoch seconds) replaces ``time.time``. Both are for tests.
    """

    def __init__(
        self,
        kafka: str | None = None,
        clickhouse: str | None = None,
        home: str | Path | None = None,
        topic: str | None = None,
        *,
        settings: WorkspaceSettings | None = None,
        transport: EventTransport | TransportFactory | None = None,
        clock: Callable[[], float] | None = None,
        **options: Any,
    ) -> None:
        if settings is None:
            settings = WorkspaceSettings.resolve(
                {"kafka": kafka, "clickhouse": clickhouse, "home": home, "topic": topic, **options}
            )
        elif any(v is not None for v in (kafka, clickhouse, home, topic)) or options:
            raise ConfigurationError("pass either settings= or individual settings, not both")
        self.settings = settings
        self._transport_override = transport
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._emitter: Emitter | None = None
        self._reader: RunReader | None = None
        self._states: weakref.WeakValueDictionary[str, RunState] = weakref.WeakValueDictionary()

    @classmethod
    def from_config(cls, path: str | Path | None = None, **overrides: Any) -> Workspace:
        """Settings from ``runstream.json`` (``path``, else ``$RUNSTREAM_CONFIG``, else found upward from cwd).

        The environment overrides the file; ``overrides`` override both.
        """
        if path is None:
            path = find_config()
            if path is None:
                raise ConfigurationError(
                    "no runstream.json found in the working directory or above, and RUNSTREAM_CONFIG is not set"
                )
        transport = overrides.pop("transport", None)
        clock = overrides.pop("clock", None)
        settings = WorkspaceSettings.from_file(path, explicit=overrides)
        return cls(settings=settings, transport=transport, clock=clock)

    @classmethod
    def default(cls) -> Workspace:
        """``from_config()`` when a ``runstream.json`` can be found, else ``Workspace()`` (environment only)."""
        path = find_config()
        return cls.from_config(path) if path is not None else cls()

    # -- emitting ------------------------------------------------------------------

    @property
    def emitter(self) -> Emitter:
        """The emitter of this workspace, started on first use."""
        emitter = self._emitter
        if emitter is None:
            with self._lock:
                if self._emitter is None:
                    self._emitter = self._build_emitter()
                emitter = self._emitter
        return emitter

    def _build_emitter(self) -> Emitter:
        s = self.settings
        transport: EventTransport | TransportFactory
        if self._transport_override is not None:
            transport = self._transport_override
        else:
            transport = self._transport_factory()
        return Emitter(
            transport,
            topic=s.topic,
            limits=s.limits,
            linger_ms=s.linger_ms,
            batch_points=s.batch_points,
            max_buffer_bytes=s.max_buffer_bytes,
            on_buffer_full=s.on_buffer_full,
            heartbeat_interval_s=s.heartbeat_interval_s,
            exit_timeout_s=s.exit_timeout_s,
            clock=self._clock,
            install_signal_handlers=s.install_signal_handlers,
        )

    def _transport_factory(self) -> TransportFactory:
        s = self.settings
        if s.embedded:
            spool = s.spool_dir
            return lambda writer_id: SpoolTransport(spool, writer_id)
        # Imported here: kafka-python loads only when a broker is configured.
        from schemas.kafka_login import check_kafka_login

        from .failover import FailoverTransport
        from .kafka_transport import KafkaTransport

        options = s.kafka_client_options()
        # A wrong password or an untrusted certificate is a mistake in the settings: say so here, in
        # the caller's thread, once (AccessDenied), rather than spool every event to the outbox.
        check_kafka_login(options["bootstrap_servers"], options, timeout_s=s.connect_timeout_s)

        def build(writer_id: str) -> EventTransport:
            def connect() -> KafkaTransport:
                return KafkaTransport(
                    options,
                    s.topic,
                    partitions=s.topic_partitions,
                    replication_factor=s.topic_replication_factor,
                    connect_timeout_s=s.connect_timeout_s,
                    client_id=f"runstream-sdk-{writer_id[:8]}",
                )

            return FailoverTransport(
                connect,
                s.topic,
                s.outbox_dir,
                writer_id,
                stall_timeout_s=s.stall_timeout_s,
                max_unacked_bytes=s.max_buffer_bytes // 2,
                close_timeout_s=s.exit_timeout_s,
            )

        return build

    def run_state(self, run_id: str, experiment: str, *, heartbeat: bool) -> RunState:
        """This process's state of a run, created on first use (shared by every handle of that run)."""
        with self._lock:
            st = self._states.get(run_id)
        if st is not None:
            return st
        st = self.emitter.open_run(run_id, experiment, heartbeat=heartbeat)
        with self._lock:
            existing = self._states.get(run_id)
            if existing is not None:
                return existing
            self._states[run_id] = st
        return st

    def known_run_state(self, run_id: str) -> RunState | None:
        """The state of a run this process has open, or None."""
        with self._lock:
            return self._states.get(run_id)

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything logged so far through this workspace; False on timeout."""
        emitter = self._emitter
        return True if emitter is None else emitter.flush(timeout)

    def emitter_if_started(self) -> Emitter | None:
        """The emitter if a run has started it, without starting one."""
        return self._emitter

    def get_mlflow_tracking_uri(self) -> str:
        """The MLflow tracking URI of this workspace: ``runstream server``'s address (setting ``server``).

        Hand it to ``mlflow.set_tracking_uri`` or Lightning's ``MLFlowLogger``:
        MLflow's metrics, params, tags and artifacts land in runstream's runs.
        """
        return self.settings.server

    # -- reading -------------------------------------------------------------------

    def reader(self) -> RunReader:
        """The reader of runs (a ``store.RunReader``, see :mod:`producers.reading`), built on first use."""
        if self._reader is None:
            # Imported here: a process that only logs never loads the store layer.
            from .reading import open_reader

            self._reader = open_reader(self.settings)
        return self._reader

    # -- lifetime ------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is buffered (up to ``exit_timeout_s``) and stop the emitter; runs can no longer log."""
        with self._lock:
            emitter = self._emitter
        if emitter is not None:
            emitter.close(timeout)
        self._reader = None  # a reader holds nothing open between reads

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.settings
        target = f"kafka={s.kafka!r}, topic={s.topic!r}" if s.kafka else f"embedded, home={str(s.home)!r}"
        return f"Workspace({target})"
