"""Reading runs back from a training process: which store to ask, and the embedded home's owner.

:func:`open_reader` builds the :class:`store.RunReader` behind ``Run.get_metrics()``
and friends for a workspace:

- **A ClickHouse server** (``clickhouse`` set): it is queried directly, one
  connection per read, with the workspace's credentials (a read-only user
  works: readers never run DDL).
- **chDB under the home** (nothing configured): chDB runs inside one process,
  the home's *owner* (:mod:`store.home`), and this process asks it over the
  home's query socket. When nobody owns the home, the first read starts an
  owner in the background — ``runstream ingest --on-demand`` for this home —
  and waits until it answers (a few seconds). That owner ingests the spool,
  answers reads, and exits once nobody asked anything for ``owner_idle_s``
  (30 s) or soon after the process that started it is gone; a `runstream
  ingest` or `runstream server` that wants the home takes it over.
- **The spool with a ClickHouse server** (``kafka`` unset, ``clickhouse`` set):
  the owner ingests the spool into the server; reads go to the server.

Whenever the home's spool feeds the store, each read first asks the owner to
*sync*: everything the spool held at that moment is ingested before the read
runs, so a script sees what it (or an earlier process) logged. In Kafka mode
events become visible only when a ``runstream ingest`` consumes them; a read
of this process's own events waits for them and otherwise says so
(:class:`~producers.errors.IngestNotRunning`).

The store's errors leave as the SDK's: ``RunNotFound``, ``IngestNotRunning``,
``ReadError``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields
from typing import Any, ContextManager

from schemas.backoff import Backoff
from schemas.limits import RunLimits
from schemas.settings import ENV, ENV_SECRETS, WorkspaceSettings
from store import (
    HomeLock,
    NotVisible,
    OwnerUnavailable,
    QueryClient,
    ReadQueries,
    RunReader,
    StoreError,
    query_address,
    server_reads,
)
from store import RunNotFound as StoreRunNotFound

from .errors import IngestNotRunning, ReadError, RunNotFound

__all__ = ["open_reader", "HomeOwner", "OWNER_LOG"]

log = logging.getLogger("runstream")

OWNER_LOG = "owner.log"
"""The on-demand owner's output, in the home (read it when an owner would not start)."""


class HomeOwner:
    """The process that owns a home's chDB and spool, found or started on demand."""

    def __init__(self, settings: WorkspaceSettings, *, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._sleep = sleep
        self._monotonic = monotonic
        self.client = QueryClient(query_address(settings.home), timeout_s=max(60.0, settings.visible_timeout_s))
        self.sync_s: float | None = settings.visible_timeout_s if settings.kafka is None else None
        """How long a read waits for the spool to be ingested (None in Kafka mode: the owner is a worker)."""

    def ensure(self) -> QueryClient:
        """A client of the home's owner; starts one when nobody owns the home. ``ReadError`` on time-out."""
        s = self._settings
        deadline = self._monotonic() + s.owner_start_timeout_s
        started: int | None = None  # the pid of an owner this call started
        lock = HomeLock(s.home)
        backoff = Backoff(initial_s=0.02, max_s=0.2)
        while True:
            if self.client.ping() is not None:
                return self.client
            code = _exit_code(started) if started is not None else None
            if code is not None:
                if code != 0:
                    raise ReadError(f"the owner started for {s.home} exited with code {code}:\n" + self._log_tail())
                started = None  # it found another owner starting up (a race between readers): look again
            if started is None and lock.try_acquire("probe"):
                lock.release()  # nobody owns it: the owner we start takes the lock itself
                started = self._start()
            if self._monotonic() >= deadline:
                holder = lock.holder() or {}
                who = (f"the owner started for it (pid {started}) did not answer" if started is not None
                       else f"it is held by pid {holder.get('pid', '?')} ({holder.get('role', '?')}), which "
                            "does not answer reads")
                raise ReadError(f"cannot read {s.home}: {who} within {s.owner_start_timeout_s:.0f}s"
                                + (f"\n{self._log_tail()}" if started is not None else ""))
            self._sleep(backoff.next_delay())

    def ready(self) -> QueryClient:
        """:meth:`ensure`, then (the spool feeds the store) wait until the owner ingested what it holds now.

        An owner that leaves between two requests (it was idle, or a `runstream ingest` took the
        home over) is looked for, or started, once more.
        """
        for attempt in (1, 2):
            client = self.ensure()
            try:
                if self.sync_s is not None and not client.sync(self.sync_s):
                    raise ReadError(f"the owner of {self._settings.home} did not ingest its spool within "
                                    f"{self.sync_s:.0f}s")
                return client
            except OwnerUnavailable:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _start(self) -> int:
        """Start ``runstream ingest --on-demand`` for the home in a session of its own; returns its pid.

        Spawned rather than held as a ``Popen``: the owner outlives this reader object (and, briefly,
        this process), so there is no handle to keep or wait for.
        """
        s = self._settings
        command = [sys.executable, "-m", "runstream", "-q", "ingest", "--on-demand", "--home", str(s.home),
                   "--topic", s.topic, "--idle-exit", f"{s.owner_idle_s:g}", "--parent-pid", str(os.getpid())]
        if s.kafka is not None:
            command += ["--kafka", s.kafka]  # Kafka into chDB: the owner is this home's ingest worker
        if s.clickhouse is not None:
            command += ["--clickhouse", s.clickhouse]
        defaults = RunLimits()
        for f in fields(RunLimits):
            if getattr(s.limits, f.name) != getattr(defaults, f.name):
                command += ["--limit", f"{f.name}={getattr(s.limits, f.name)}"]
        # Only our arguments say where things are: the caller's RUNSTREAM_* may describe another setup.
        # TLS/SASL settings and passwords go through the environment, never this command line.
        passwords = {*ENV_SECRETS.values(), *(f"{var}_FILE" for var in ENV_SECRETS.values())}
        env = {k: v for k, v in os.environ.items() if k not in ENV.values() and k not in passwords}
        env.update(s.security_env())
        s.home.mkdir(parents=True, exist_ok=True)
        log.info("runstream: starting an owner for %s (it exits after %gs without reads)", s.home, s.owner_idle_s)
        output = str(s.home / OWNER_LOG)
        return os.posix_spawn(sys.executable, command, env, setsid=True, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ])

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = (self._settings.home / OWNER_LOG).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no owner log)"
        return "\n".join(text.splitlines()[-lines:])


class _OwnerQueries:
    """Named read queries over the home's socket; an owner that left meanwhile is replaced once."""

    def __init__(self, owner: HomeOwner) -> None:
        self._owner = owner

    def fetch(self, name: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        try:
            return self._owner.client.fetch(name, params)
        except OwnerUnavailable:
            self._owner.ready()
            return self._owner.client.fetch(name, params)


def _exit_code(pid: int) -> int | None:
    """The exit code of our child ``pid`` once it has exited (reaping it), else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 0  # already reaped
    return os.waitstatus_to_exitcode(status) if done else None


def _sdk_errors(settings: WorkspaceSettings) -> Callable[[], ContextManager[None]]:
    """Turns the store's errors into the SDK's, with what a user can do about them."""

    @contextlib.contextmanager
    def translate() -> Iterator[None]:
        try:
            yield
        except StoreRunNotFound as exc:
            raise RunNotFound(str(exc)) from exc
        except NotVisible as exc:
            if settings.kafka is not None:
                raise IngestNotRunning(
                    f"{exc}. Events sent to Kafka ({settings.kafka}) become visible only once `runstream ingest` "
                    "consumes them: is it running? Start it with: runstream ingest --kafka <bootstrap>"
                    + (f" --clickhouse {settings.clickhouse}" if settings.clickhouse else "")) from exc
            raise ReadError(str(exc)) from exc
        except StoreError as exc:
            raise ReadError(str(exc)) from exc

    return translate


def open_reader(settings: WorkspaceSettings) -> RunReader:
    """The reader of runs for ``settings`` (see the module docstring for where it reads)."""
    translate = _sdk_errors(settings)
    owner = HomeOwner(settings) if settings.kafka is None or settings.clickhouse is None else None
    server = (server_reads(settings.clickhouse, password=settings.clickhouse_password)
              if settings.clickhouse is not None else None)

    @contextlib.contextmanager
    def connect() -> Iterator[ReadQueries]:
        with translate():
            queries: ReadQueries
            if owner is not None:
                owner.ready()
                if server is None:
                    yield _OwnerQueries(owner)
                    return
            assert server is not None
            with server() as queries:
                yield queries

    return RunReader(connect, heartbeat_lost_s=settings.heartbeat_lost_s,
                     visible_timeout_s=settings.visible_timeout_s)

