"""The embedded home's query socket: how other processes read a chDB that one process owns.

chDB runs inside one process, the home's owner (:mod:`store.home`). Every
other process asks it over a local Unix socket. No SQL crosses the socket: a
request names one of the read queries of :data:`store.queries.READ_QUERIES`
and passes its typed parameters; anything else is refused.

Framing: a 4-byte big-endian length, then JSON. Requests::

    {"op": "ping"}                          -> {"ok": true, "pid": ..., "role": ...}
    {"op": "fetch", "query": NAME, "params": {...}}
                                            -> {"rows": [[...], ...]}, or {"encoded": {"$b": ...}}:
                                               chDB's own output, parsed by the reader (so the
                                               owner, which is also ingest, does not)
    {"op": "sync", "timeout_s": S}          -> {"ok": true} once everything the home's spool held
                                               when asked is ingested ({"ok": false} after S seconds)
    {"op": "release"}                       -> {"ok": true}; an owner started on demand then exits
                                               and frees the home (others answer {"ok": false})

Errors come back as ``{"error": "..."}``. Bytes travel as ``{"$b": base64}``;
NaN and infinities as JSON's ``NaN``/``Infinity`` extensions (both ends are
Python). The socket is abstract (no file permissions), so the server serves
only peers of its own uid (``SO_PEERCRED``).

Bounds (:class:`SocketLimits`), so that no client can exhaust the owner:

- a request frame is at most 64 KiB (refused from its length prefix, before
  anything is read) and must arrive within 5 s of connecting;
- parameters are exactly the query's ``{name:Type}`` placeholders, each of its
  type (``String``: a str; ``Float64``, ``Int64``, ``UInt32``: a JSON number in
  range; ``Array(T)``: a list of those), bounded in size; any other type is
  refused (:class:`QueryClient` leaves out parameters a query does not use, as
  :class:`store.queries.StoreQueries` ignores them);
- at most 4 requests are answered at once; a connection beyond that is
  answered ``busy`` at once by the accepting thread, which starts no thread for
  it and then rests 10 ms, so a flood of connections costs the owner at most
  100 refusals a second (the rest wait in, or are refused by, the kernel's
  accept queue of 128); :class:`QueryClient` waits and asks again, within its
  timeout;
- a reply is at most :data:`MAX_FRAME_BYTES`;
- the time limit of a query (10 s by default), and read-only, are the engine's:
  the owner serves from :meth:`store.chdb.ChdbStore.open_reader`, a connection
  of its own, so ingest never waits for a reader's lock;
- one read query runs at a time, paced by a token bucket: past a burst of 2 s
  of reading, readers get at most a quarter of the owner's time
  (``reader_share`` 0.25), whose other three quarters are ingest's.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._results import parse_rows
from .errors import OwnerUnavailable, StoreError
from .queries import READ_QUERIES, ReadQueries
from .sql import placeholders

__all__ = ["QueryServer", "QueryClient", "SocketLimits", "MAX_FRAME_BYTES"]

log = logging.getLogger("runstream.store")
_LEN = struct.Struct(">I")
_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid

MAX_FRAME_BYTES = 64 * 1024 * 1024
"""Largest reply either side accepts (a file chunk read back is at most 512 KiB, hex-encoded)."""

_BUSY = "busy"
_QUEUE_FULL = "queue full"


@dataclass(frozen=True, kw_only=True, slots=True)
class SocketLimits:
    """What one owner grants its readers; see the module docstring."""

    max_request_bytes: int = 64 * 1024
    """A request names a query and its values: a run id, a few metric names."""
    max_clients: int = 4
    """Requests answered at once; more connections get ``busy`` without a thread."""
    request_timeout_s: float = 5.0
    """A client must send its whole request this soon after connecting (no slow trickles holding a slot)."""
    max_string_bytes: int = 16 * 1024
    """One ``String`` parameter (ids and names are at most 256 characters)."""
    max_array_items: int = 10_000
    """One ``Array(String)`` parameter (metric names of a run; Azure ML allows 50)."""
    reader_share: float = 0.25
    """Readers' share of the owner's time, over time: one read query runs at a time, paced by a
    token bucket (see ``QueryServer._fetch``). The owner is also the home's ingest, in the same
    Python process (one GIL, the same cores): this is what keeps its pace under a flood. (A lowered
    thread priority would not do it: a reader thread holding the GIL would then stall ingest.)"""
    reader_burst_s: float = 2.0
    """Seconds of reading allowed at once before the pacing starts (an interactive reader's reads)."""
    refusal_pause_s: float = 0.01
    """After answering ``busy``, the accepting thread rests this long: at most 100 refusals a second."""

    def __post_init__(self) -> None:
        for name in ("max_request_bytes", "max_clients", "max_string_bytes", "max_array_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.request_timeout_s <= 0:
            raise ValueError("request_timeout_s must be positive")
        if not 0 < self.reader_share <= 1:
            raise ValueError("reader_share must be in (0, 1]")
        if self.reader_burst_s < 0 or self.refusal_pause_s < 0:
            raise ValueError("reader_burst_s and refusal_pause_s must not be negative")


_DECLARED: Mapping[str, Mapping[str, str]] = {name: placeholders(sql) for name, sql in READ_QUERIES.items()}
"""Query name -> its parameters and their declared types."""


class _Refused(Exception):
    """A request this socket does not answer; the message goes back to the client."""


def _check_params(name: str, params: Any, limits: SocketLimits) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise _Refused("params must be a JSON object")
    declared = _DECLARED[name]
    if set(params) != set(declared):
        raise _Refused(f"query {name!r} takes exactly the parameters {sorted(declared)}, got {sorted(params)}")
    for param, typ in declared.items():
        if not _value_ok(typ, params[param], limits):
            raise _Refused(f"parameter {param!r} of query {name!r} must be a {typ} (bounded in size)")
    return params


_INTEGER_RANGES = {"Int64": (-(1 << 63), (1 << 63) - 1), "UInt32": (0, (1 << 32) - 1)}
_CHECKED_TYPES = frozenset({"String", "Float64", *_INTEGER_RANGES})
"""Parameter types the socket checks, and ``Array(...)`` of each; a query with any other type is refused."""


def _scalar_ok(typ: str, value: Any, limits: SocketLimits) -> bool:
    if typ == "String":
        return isinstance(value, str) and len(value.encode("utf-8")) <= limits.max_string_bytes
    if isinstance(value, bool):  # JSON true/false are not numbers here
        return False
    if typ == "Float64":
        return isinstance(value, (int, float))
    if typ in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[typ]
        return isinstance(value, int) and low <= value <= high
    return False  # a type this socket does not know how to check: refuse rather than guess


def _value_ok(typ: str, value: Any, limits: SocketLimits) -> bool:
    if typ.startswith("Array(") and typ.endswith(")"):
        inner = typ[len("Array("):-1]
        return (isinstance(value, list) and len(value) <= limits.max_array_items
                and all(_scalar_ok(inner, item, limits) for item in value))
    return _scalar_ok(typ, value, limits)


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot send a {type(value).__name__} over the query socket")


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$b" in obj:
        return base64.b64decode(obj["$b"])
    return obj


def _send(sock: socket.socket, payload: Any) -> None:
    data = json.dumps(payload, default=_default).encode("utf-8")
    sock.sendall(_LEN.pack(len(data)) + data)


def _refuse_busy(sock: socket.socket, max_clients: int) -> None:
    """Tell a connection over the limit to come back later; never blocks the accepting thread for long."""
    try:
        sock.settimeout(0.2)
        _send(sock, {"error": _BUSY, "detail": f"{max_clients} requests are being answered; ask again"})
    except OSError:
        pass


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise ConnectionError("query socket closed mid-message")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv(sock: socket.socket, limit: int = MAX_FRAME_BYTES) -> Any:
    (n,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
    if n > limit:
        raise _Refused(f"a frame of {n} bytes is over the limit of {limit}")
    return json.loads(_recv_exact(sock, n), object_hook=_hook)


def _encode(payload: Any) -> bytes:
    data = json.dumps(payload, default=_default).encode("utf-8")
    return _LEN.pack(len(data)) + data


class QueryServer:
    """Serves ``queries`` (and the owner's ``sync`` / ``release``) on ``address`` from a daemon thread.

    ``sync(timeout_s) -> bool`` waits until what the spool held when asked is
    ingested; ``release() -> bool`` asks the owner to step down (True when it
    will). Without them those requests answer ``{"ok": false}``. ``info`` is
    returned by ``ping`` (the owner's pid and role).
    """

    def __init__(self, queries: ReadQueries, address: str, *,
                 sync: Callable[[float], bool] | None = None, release: Callable[[], bool] | None = None,
                 info: Mapping[str, Any] | None = None, limits: SocketLimits | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.address = address
        self._clock, self._sleep = clock, sleep
        self.limits = limits or SocketLimits()
        server = self
        slots = threading.BoundedSemaphore(self.limits.max_clients)

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._handle(self.request)

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True
            block_on_close = False
            request_queue_size = 128  # connections waiting for accept(); beyond it connect() fails with EAGAIN

            def process_request(self, request: Any, client_address: Any) -> None:
                # Decided on the accepting thread: a connection over the limit never gets a thread.
                if not slots.acquire(blocking=False):
                    server.refused_busy += 1
                    _refuse_busy(request, server.limits.max_clients)
                    self.shutdown_request(request)
                    # A flood of connections then fills the kernel's accept queue, where further
                    # connects fail (EAGAIN) at no cost to this process, which is also ingest.
                    time.sleep(server.limits.refusal_pause_s)
                    return
                try:
                    super().process_request(request, client_address)
                except BaseException:
                    slots.release()
                    raise

            def process_request_thread(self, request: Any, client_address: Any) -> None:
                try:
                    super().process_request_thread(request, client_address)
                finally:
                    slots.release()

        self.refused_busy = 0
        """Connections answered ``busy`` because :attr:`SocketLimits.max_clients` were being served."""
        self._queries = queries
        self._sync = sync
        self._release = release
        self._info = {"pid": os.getpid(), **(info or {})}
        self.last_request: float | None = None
        """When the last request arrived or was answered (``time.monotonic``); None before the first."""
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._reads = threading.Lock()
        self._read_credit_s = self.limits.reader_burst_s
        self._read_credit_at = clock()
        self._server = Server(address, Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="runstream-query-socket",
                                        kwargs={"poll_interval": 0.2}, daemon=True)

    @property
    def busy(self) -> bool:
        """True while a request is being answered (a long ``sync``: the owner is not idle)."""
        return self._in_flight > 0

    def _handle(self, sock: socket.socket) -> None:
        with self._in_flight_lock:
            self._in_flight += 1
        try:
            self._serve_one(sock)
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1
            self.last_request = time.monotonic()

    def _serve_one(self, sock: socket.socket) -> None:
        try:
            # An abstract socket has no file permissions: only this user's processes may ask.
            _pid, uid, _gid = _CREDS.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDS.size))
            if uid != os.getuid():
                log.warning("query socket: refused a connection from uid %d", uid)
                return
            sock.settimeout(self.limits.request_timeout_s)
            try:
                request = _recv(sock, self.limits.max_request_bytes)
            except ValueError as exc:  # not JSON (json.JSONDecodeError, UnicodeDecodeError)
                raise _Refused(f"a request is a JSON object ({exc})") from None
            sock.settimeout(None)
            self.last_request = time.monotonic()
            if not isinstance(request, dict):
                raise _Refused("a request is a JSON object")
            if request.get("op") == "fetch":
                self._fetch(sock, request)
            else:
                sock.sendall(self._encode_reply(self._answer(request)))
        except _Refused as exc:
            self._reply_error(sock, f"refused: {exc}")
        except (ConnectionError, OSError):
            return
        except Exception as exc:  # reported to the reader, who raises it
            self._reply_error(sock, f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _encode_reply(answer: Mapping[str, Any]) -> bytes:
        reply = _encode(answer)
        if len(reply) - _LEN.size > MAX_FRAME_BYTES:
            raise _Refused(f"the reply of {len(reply)} bytes is over the limit of {MAX_FRAME_BYTES}")
        return reply

    def _fetch(self, sock: socket.socket, request: Mapping[str, Any]) -> None:
        """One read query, paced so that readers take at most ``reader_share`` of the owner's time.

        A token bucket of seconds: credit accrues at ``reader_share`` per second up to
        ``reader_burst_s``; a read spends what it took; a read that finds the credit spent
        waits until it is back to zero. An occasional reader never waits.
        """
        limits = self.limits
        with self._reads:
            now = self._clock()
            credit = min(limits.reader_burst_s, self._read_credit_s + (now - self._read_credit_at) * limits.reader_share)
            if credit < 0:
                self._sleep(-credit / limits.reader_share)
                now, credit = self._clock(), 0.0
            try:
                reply = self._encode_reply(self._answer(request))
            finally:
                ended = self._clock()
                self._read_credit_s, self._read_credit_at = credit - (ended - now), ended
        sock.sendall(reply)

    @staticmethod
    def _reply_error(sock: socket.socket, message: str) -> None:
        try:
            sock.settimeout(1.0)
            _send(sock, {"error": message})
        except OSError:
            pass

    def _answer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "ping":
            return {"ok": True, **self._info}
        if op == "fetch":
            name, params = request.get("query"), request.get("params", {})
            if not isinstance(name, str) or name not in READ_QUERIES:
                raise _Refused(f"unknown read query {str(name)[:100]!r}; this socket answers only named read "
                               "queries, never SQL text")
            params = _check_params(name, params, self.limits)
            fetch_encoded = getattr(self._queries, "fetch_encoded", None)
            encoded = fetch_encoded(name, params) if fetch_encoded is not None else None
            if encoded is not None:
                return {"encoded": encoded}
            return {"rows": [list(r) for r in self._queries.fetch(name, params)]}
        if op == "sync":
            timeout_s = request.get("timeout_s", 30.0)
            if not isinstance(timeout_s, (int, float)) or not 0 <= timeout_s <= 600:
                return {"error": "timeout_s must be a number of seconds in 0..600"}
            return {"ok": bool(self._sync(float(timeout_s))) if self._sync is not None else False}
        if op == "release":
            return {"ok": bool(self._release()) if self._release is not None else False}
        if "sql" in request:
            raise _Refused("SQL text is not accepted; ask for a named read query (op fetch)")
        raise _Refused(f"unknown op {str(op)[:100]!r}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class QueryClient:
    """Asks the owner of a home: a :class:`~store.queries.ReadQueries` over its query socket."""

    def __init__(self, address: str, *, timeout_s: float = 60.0) -> None:
        self.address = address
        self.timeout_s = timeout_s

    def _call(self, request: Mapping[str, Any], timeout_s: float | None = None) -> Any:
        """One request; a ``busy`` owner is asked again (backing off) until the timeout."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        pause = 0.02
        while True:
            reply = self._call_once(request, max(0.1, deadline - time.monotonic()))
            if reply.get("error") not in (_BUSY, _QUEUE_FULL):
                break
            if time.monotonic() + pause >= deadline:
                raise OwnerUnavailable(f"the home's owner stayed busy with other readers for {timeout_s:g}s")
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
        if "error" in reply:
            raise StoreError(f"the home's owner refused the request: {reply['error']}", retriable=False)
        return reply

    def _call_once(self, request: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        try:
            try:
                sock.connect(self.address)
            except BlockingIOError:
                return {"error": _QUEUE_FULL}  # the owner's accept queue is full: as good as busy
            except OSError as exc:
                raise OwnerUnavailable(f"nobody answers on this home's query socket: {exc}") from exc
            try:
                _send(sock, request)
            except (BrokenPipeError, ConnectionResetError):
                # Answered before it asked: a busy owner replies at once and hangs up.
                try:
                    reply = _recv(sock)
                except (ConnectionError, OSError, ValueError, _Refused):
                    return {"error": _BUSY}
            else:
                reply = _recv(sock)
        except (ConnectionError, socket.timeout, _Refused) as exc:
            raise OwnerUnavailable(f"the home's owner did not answer: {exc}") from exc
        finally:
            sock.close()
        if not isinstance(reply, dict):
            raise OwnerUnavailable(f"the home's owner sent a malformed reply: {reply!r}")
        return reply

    def ping(self) -> dict[str, Any] | None:
        """What the owner says about itself (pid, role), or None when nobody answers."""
        try:
            reply = self._call({"op": "ping"}, timeout_s=min(self.timeout_s, 5.0))
        except OwnerUnavailable:
            return None
        return reply if reply.get("ok") else None

    def fetch(self, name: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        # As in process (StoreQueries), parameters the query does not use are ignored: callers share one
        # argument dict across queries. The owner takes exactly the query's parameters.
        declared = _DECLARED.get(name)
        sent = {k: v for k, v in params.items() if k in declared} if declared is not None else dict(params)
        reply = self._call({"op": "fetch", "query": name, "params": sent})
        if "encoded" in reply:
            return parse_rows(reply["encoded"])
        return [tuple(r) for r in reply["rows"]]

    def sync(self, timeout_s: float) -> bool:
        """Wait until the owner has ingested everything its spool held now; False on timeout."""
        reply = self._call({"op": "sync", "timeout_s": timeout_s}, timeout_s=timeout_s + 5.0)
        return bool(reply.get("ok"))

    def release(self) -> bool:
        """Ask an owner started on demand to step down; True when it will."""
        try:
            return bool(self._call({"op": "release"}, timeout_s=5.0).get("ok"))
        except OwnerUnavailable:
            return False
