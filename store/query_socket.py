"""The embedded home's query socket: how other processes read a chDB that one process owns.

chDB runs inside one process, the home's owner (:mod:`store.home`). Every
other process asks it over a local Unix socket. No SQL crosses the socket: a
request names one of the read queries of :data:`store.queries.READ_QUERIES`
and passes its typed parameters; anything else is refused.

Framing: a 4-byte big-endian length, then JSON. Requests::

    {"op": "ping"}                          -> {"ok": true, "pid": ..., "role": ...}
    {"op": "fetch", "query": NAME, "params": {...}}
                                            -> {"rows": [[...], ...]}
    {"op": "sync", "timeout_s": S}          -> {"ok": true} once everything the home's spool held
                                               when asked is ingested ({"ok": false} after S seconds)
    {"op": "release"}                       -> {"ok": true}; an owner started on demand then exits
                                               and frees the home (others answer {"ok": false})

Errors come back as ``{"error": "..."}``. Bytes travel as ``{"$b": base64}``;
NaN and infinities as JSON's ``NaN``/``Infinity`` extensions (both ends are
Python). The socket is abstract (no file permissions), so the server serves
only peers of its own uid (``SO_PEERCRED``).
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
from typing import Any

from .errors import OwnerUnavailable, StoreError
from .queries import READ_QUERIES, ReadQueries

__all__ = ["QueryServer", "QueryClient", "MAX_FRAME_BYTES"]

log = logging.getLogger("runstream.store")
_LEN = struct.Struct(">I")
_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid

MAX_FRAME_BYTES = 64 * 1024 * 1024
"""Largest message either side accepts (a file chunk read back is at most 512 KiB, hex-encoded)."""


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


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise ConnectionError("query socket closed mid-message")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv(sock: socket.socket) -> Any:
    (n,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
    if n > MAX_FRAME_BYTES:
        raise ConnectionError(f"query frame of {n} bytes refused (limit {MAX_FRAME_BYTES})")
    return json.loads(_recv_exact(sock, n), object_hook=_hook)


class QueryServer:
    """Serves ``queries`` (and the owner's ``sync`` / ``release``) on ``address`` from a daemon thread.

    ``sync(timeout_s) -> bool`` waits until what the spool held when asked is
    ingested; ``release() -> bool`` asks the owner to step down (True when it
    will). Without them those requests answer ``{"ok": false}``. ``info`` is
    returned by ``ping`` (the owner's pid and role).
    """

    def __init__(self, queries: ReadQueries, address: str, *,
                 sync: Callable[[float], bool] | None = None, release: Callable[[], bool] | None = None,
                 info: Mapping[str, Any] | None = None) -> None:
        self.address = address
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._handle(self.request)

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self._queries = queries
        self._sync = sync
        self._release = release
        self._info = {"pid": os.getpid(), **(info or {})}
        self.last_request: float | None = None
        """When the last request arrived or was answered (``time.monotonic``); None before the first."""
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
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
            request = _recv(sock)
            self.last_request = time.monotonic()
            if not isinstance(request, dict):
                _send(sock, {"error": "a request is a JSON object"})
                return
            _send(sock, self._answer(request))
        except (ConnectionError, OSError):
            return
        except Exception as exc:  # reported to the reader, who raises it
            try:
                _send(sock, {"error": f"{type(exc).__name__}: {exc}"})
            except OSError:
                pass

    def _answer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "ping":
            return {"ok": True, **self._info}
        if op == "fetch":
            name, params = request.get("query"), request.get("params") or {}
            if not isinstance(name, str) or name not in READ_QUERIES:
                return {"error": f"unknown read query {name!r}; this socket answers only named read queries"}
            if not isinstance(params, dict):
                return {"error": "params must be a JSON object"}
            return {"rows": [list(r) for r in self._queries.fetch(name, params)]}
        if op == "sync":
            timeout_s = request.get("timeout_s", 30.0)
            if not isinstance(timeout_s, (int, float)) or not 0 <= timeout_s <= 600:
                return {"error": "timeout_s must be a number of seconds in 0..600"}
            return {"ok": bool(self._sync(float(timeout_s))) if self._sync is not None else False}
        if op == "release":
            return {"ok": bool(self._release()) if self._release is not None else False}
        return {"error": f"unknown op {op!r}"}

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
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s if timeout_s is None else timeout_s)
        try:
            try:
                sock.connect(self.address)
            except OSError as exc:
                raise OwnerUnavailable(f"nobody answers on this home's query socket: {exc}") from exc
            _send(sock, request)
            reply = _recv(sock)
        except (ConnectionError, socket.timeout) as exc:
            raise OwnerUnavailable(f"the home's owner did not answer: {exc}") from exc
        finally:
            sock.close()
        if not isinstance(reply, dict):
            raise OwnerUnavailable(f"the home's owner sent a malformed reply: {reply!r}")
        if "error" in reply:
            raise StoreError(f"the home's owner refused the request: {reply['error']}", retriable=False)
        return reply

    def ping(self) -> dict[str, Any] | None:
        """What the owner says about itself (pid, role), or None when nobody answers."""
        try:
            reply = self._call({"op": "ping"}, timeout_s=min(self.timeout_s, 5.0))
        except OwnerUnavailable:
            return None
        return reply if reply.get("ok") else None

    def fetch(self, name: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        reply = self._call({"op": "fetch", "query": name, "params": dict(params)})
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
