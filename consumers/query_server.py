"""Readers' queries, answered by the process that owns a home's chDB.

chDB runs inside one process; while ``runstream ingest`` owns it, other
processes cannot open it. They send their (parameterised) query over a local
Unix socket instead and get the rows back. Framing: a 4-byte big-endian length,
then JSON: ``{"sql": ..., "params": {...}}`` -> ``{"rows": [[...], ...]}`` or
``{"error": "..."}``. Bytes travel as ``{"$b": base64}``; NaN and infinities as
JSON's ``NaN``/``Infinity`` extensions (both ends are Python).

Queries are data-safe the same way as in-process ones: the SQL text comes from
the reader's fixed templates and every user value is a ``{name:Type}`` parameter.
The socket is abstract (no file permissions), so the server serves only peers of
its own uid (``SO_PEERCRED``) and only ``SELECT`` statements.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import socketserver
import struct
import threading
from typing import Any, Mapping, Protocol

from .errors import SinkError

__all__ = ["QueryServer", "QueryClient", "QueryServerUnavailable"]

log = logging.getLogger("runstream.ingest")
_LEN = struct.Struct(">I")
_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid
_READ_ONLY = re.compile(r"\s*SELECT\b", re.IGNORECASE)
_MAX_FRAME = 512 * 1024 * 1024


class QueryServerUnavailable(SinkError):
    """Nobody answers on the query socket (the owner exited, or is not an ingest process)."""


class _Runner(Protocol):
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]: ...


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
    if n > _MAX_FRAME:
        raise ConnectionError(f"query frame of {n} bytes refused")
    return json.loads(_recv_exact(sock, n), object_hook=_hook)


class QueryServer:
    """Serves ``runner.query`` on ``address`` from a daemon thread; ``lock`` serialises with the worker."""

    def __init__(self, runner: _Runner, address: str, lock: threading.Lock) -> None:
        self.address = address
        runner_ref, lock_ref = runner, lock

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    # An abstract socket has no file permissions: only this user's processes may ask.
                    creds = self.request.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDS.size)
                    _pid, uid, _gid = _CREDS.unpack(creds)
                    if uid != os.getuid():
                        log.warning("query socket: refused a connection from uid %d", uid)
                        return
                    request = _recv(self.request)
                    if request.get("op") == "ping":
                        _send(self.request, {"ok": True})
                        return
                    sql, params = request["sql"], request.get("params")
                    if not _READ_ONLY.match(sql):
                        _send(self.request, {"error": "only SELECT queries are served"})
                        return
                    with lock_ref:
                        rows = runner_ref.query(sql, params)
                    _send(self.request, {"rows": [list(r) for r in rows]})
                except (ConnectionError, OSError):
                    return
                except Exception as exc:  # reported to the reader, who raises it
                    try:
                        _send(self.request, {"error": f"{type(exc).__name__}: {exc}"})
                    except OSError:
                        pass

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self._server = Server(address, Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="runstream-query-server",
                                        kwargs={"poll_interval": 0.2}, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class QueryClient:
    """A ``QueryRunner`` that asks the owning process."""

    def __init__(self, address: str, *, timeout_s: float = 60.0) -> None:
        self.address = address
        self.timeout_s = timeout_s

    def _call(self, request: Mapping[str, Any]) -> Any:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s)
        try:
            try:
                sock.connect(self.address)
            except OSError as exc:
                raise QueryServerUnavailable(f"no runstream ingest answers queries here: {exc}") from exc
            _send(sock, request)
            return _recv(sock)
        except (ConnectionError, socket.timeout) as exc:
            raise QueryServerUnavailable(f"the owning runstream ingest did not answer: {exc}") from exc
        finally:
            sock.close()

    def ping(self) -> bool:
        """True when an owner answers."""
        try:
            return bool(self._call({"op": "ping"}).get("ok"))
        except QueryServerUnavailable:
            return False

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        reply = self._call({"sql": sql, "params": dict(params or {})})
        if "error" in reply:
            raise SinkError(f"query failed in the owning runstream ingest: {reply['error']}")
        return [tuple(r) for r in reply["rows"]]
