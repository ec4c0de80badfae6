"""One TLS handshake and one SASL login to a Kafka broker, before kafka-python connects.

Why: kafka-python 3.0.12 cannot report a refused login. The broker answers a
failed SCRAM exchange with an error response and closes the connection at once;
kafka-python reads the bytes and the end of stream in one go and keeps only the
end of stream, so it sees "socket disconnected", backs off and tries again until
its bootstrap timeout ends in ``KafkaTimeoutError: Unable to bootstrap``. An
untrusted broker certificate ends the same way. A worker that waits for Kafka
would wait for ever, and nobody would learn that the password is wrong.

:func:`check_kafka_login` does what kafka-python would do on its first connection,
with blocking sockets and the standard library only, and raises one clear,
non-retriable error (an :class:`~schemas.errors.AccessDenied`):
:class:`CertificateUntrusted`, :class:`TlsHandshakeFailed` or
:class:`AuthenticationFailed`. A broker that does not answer is left to the
caller's usual handling of an outage. It takes the same option names as kafka-python
(``security_protocol``, ``ssl_cafile``, ``sasl_mechanism``,
``sasl_plain_username``, ``sasl_plain_password``, ...), so callers pass the
options they are about to hand to kafka-python. Passwords never appear in a
message.

Wire format (Kafka protocol, non-flexible versions every broker since 1.0 and
up to 4.x accepts): request header v1, ``SaslHandshake`` v1, ``SaslAuthenticate`` v0.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import socket
import ssl
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import AccessDenied

__all__ = ["AuthenticationFailed", "CertificateUntrusted", "TlsHandshakeFailed", "check_kafka_login"]


class CertificateUntrusted(AccessDenied):
    """The broker's TLS certificate is not signed by a trusted CA or names another host."""


class TlsHandshakeFailed(AccessDenied):
    """The server did not complete a TLS handshake: most likely not a TLS listener."""


class AuthenticationFailed(AccessDenied):
    """The broker refused the SASL login (wrong user or password, or a mechanism it does not offer)."""


_log = logging.getLogger("runstream.kafka")
_SASL_HANDSHAKE = 17
_SASL_AUTHENTICATE = 36
_CLIENT_ID = b"runstream-login-check"
_MAX_FRAME = 1 << 20
_SCRAM = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


def check_kafka_login(bootstrap: str | Sequence[str], options: Mapping[str, Any], *,
                      timeout_s: float = 10.0) -> bool:
    """Log in once to the first bootstrap server that answers; True when the login works.

    Does nothing (True) for ``PLAINTEXT`` and for SASL mechanisms other than
    PLAIN and SCRAM (those are left to kafka-python). Raises
    :class:`CertificateUntrusted`, :class:`TlsHandshakeFailed` or
    :class:`AuthenticationFailed`; returns False when no server answers within
    ``timeout_s`` (an outage: the caller's usual waiting applies).
    """
    protocol = str(options.get("security_protocol", "PLAINTEXT")).upper()
    if protocol not in ("SSL", "SASL_SSL", "SASL_PLAINTEXT"):
        return True
    mechanism = str(options.get("sasl_mechanism", "PLAIN")).upper()
    sasl = protocol.startswith("SASL")
    if sasl and mechanism not in _SCRAM and mechanism != "PLAIN":
        return True
    context = _ssl_context(options) if protocol in ("SSL", "SASL_SSL") else None
    deadline = time.monotonic() + timeout_s
    for host, port in _servers(bootstrap):
        try:
            with _connect(host, port, context, deadline, options) as sock:
                if sasl:
                    _sasl_login(sock, mechanism, options, deadline)
            return True
        except ssl.SSLCertVerificationError as exc:
            cafile = options.get("ssl_cafile") or "the system's default CAs"
            raise CertificateUntrusted(
                f"Kafka broker {host}:{port} presented a certificate this client does not trust "
                f"({exc.verify_message}; trusted: {cafile})"
            ) from None
        except ssl.SSLError as exc:
            raise TlsHandshakeFailed(
                f"Kafka server {host}:{port} did not complete a TLS handshake ({exc.reason or exc}); "
                f"is it a {protocol} listener?"
            ) from None
        except (OSError, _Truncated) as exc:
            _log.debug("Kafka login check: %s:%s did not answer: %s: %s", host, port, type(exc).__name__, exc)
    return False


class _Truncated(Exception):
    """The broker closed the connection in the middle of a frame."""


def _servers(bootstrap: str | Sequence[str]) -> list[tuple[str, int]]:
    servers = []
    items = bootstrap.split(",") if isinstance(bootstrap, str) else list(bootstrap)
    for item in items:
        host, _, port = item.strip().rpartition(":")
        servers.append((host.strip("[]") or "localhost", int(port)))
    return servers


def _ssl_context(options: Mapping[str, Any]) -> ssl.SSLContext:
    given = options.get("ssl_context")
    if isinstance(given, ssl.SSLContext):
        return given
    context = ssl.create_default_context(cafile=options.get("ssl_cafile"))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = bool(options.get("ssl_check_hostname", True))
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"), options.get("ssl_password"))
    return context


def _connect(host: str, port: int, context: ssl.SSLContext | None, deadline: float,
             options: Mapping[str, Any]) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=max(0.1, deadline - time.monotonic()))
    if context is None:
        return sock
    try:
        server_name = options.get("ssl_server_hostname") or host
        return context.wrap_socket(sock, server_hostname=server_name)
    except BaseException:
        sock.close()
        raise


def _sasl_login(sock: socket.socket, mechanism: str, options: Mapping[str, Any], deadline: float) -> None:
    user = str(options.get("sasl_plain_username") or "")
    password = str(options.get("sasl_plain_password") or "")
    correlation = 0

    def exchange(api_key: int, version: int, body: bytes) -> bytes:
        nonlocal correlation
        correlation += 1
        header = struct.pack(">hhih", api_key, version, correlation, len(_CLIENT_ID)) + _CLIENT_ID
        frame = header + body
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", _read(sock, 4))[0]
        if not 4 <= size <= _MAX_FRAME:
            raise _Truncated(f"bad frame size {size}")
        answer = _read(sock, size)
        if struct.unpack(">i", answer[:4])[0] != correlation:
            raise _Truncated("answer to another request")
        return answer[4:]

    answer = exchange(_SASL_HANDSHAKE, 1, _string(mechanism.encode()))
    error = struct.unpack(">h", answer[:2])[0]
    if error:
        offered = _string_array(answer[2:])
        raise AuthenticationFailed(
            f"Kafka broker does not offer SASL mechanism {mechanism} (it offers {', '.join(offered) or 'none'})"
        )

    def authenticate(token: bytes) -> bytes:
        answer = exchange(_SASL_AUTHENTICATE, 0, struct.pack(">i", len(token)) + token)
        error = struct.unpack(">h", answer[:2])[0]
        message, rest = _nullable_string(answer[2:])
        if error:
            raise AuthenticationFailed(
                f"Kafka refused the SASL {mechanism} login of user {user!r}: {message or f'error code {error}'}"
            )
        length = struct.unpack(">i", rest[:4])[0]
        return rest[4:4 + max(length, 0)]

    if mechanism == "PLAIN":
        authenticate(b"\0" + user.encode() + b"\0" + password.encode())
        return
    _scram(authenticate, _SCRAM[mechanism], user, password, mechanism)


def _scram(authenticate: Any, digest: str, user: str, password: str, mechanism: str, *,
           nonce: str | None = None) -> None:
    """RFC 5802 client: client-first, client-final, and the server's signature checked.

    ``authenticate(token) -> answer`` carries one SASL token each way.
    """
    nonce = nonce or base64.b64encode(os.urandom(24)).decode()
    name = user.replace("=", "=3D").replace(",", "=2C")
    first_bare = f"n={name},r={nonce}"
    server_first = authenticate(f"n,,{first_bare}".encode()).decode()
    fields = dict(part.split("=", 1) for part in server_first.split(","))
    if not fields.get("r", "").startswith(nonce):
        raise AuthenticationFailed(f"Kafka broker answered the SASL {mechanism} login with a foreign nonce")
    salted = hashlib.pbkdf2_hmac(digest, password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.digest(salted, b"Client Key", digest)
    stored_key = hashlib.new(digest, client_key).digest()
    final_bare = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{final_bare}".encode()
    signature = hmac.digest(stored_key, auth_message, digest)
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    server_final = authenticate(f"{final_bare},p={base64.b64encode(proof).decode()}".encode()).decode()
    expected = hmac.digest(hmac.digest(salted, b"Server Key", digest), auth_message, digest)
    answer = dict(part.split("=", 1) for part in server_final.split(",") if "=" in part)
    if "e" in answer:
        raise AuthenticationFailed(f"Kafka refused the SASL {mechanism} login of user {user!r}: {answer['e']}")
    if not hmac.compare_digest(base64.b64decode(answer.get("v", "")), expected):
        raise AuthenticationFailed(f"Kafka broker could not prove it knows the SASL {mechanism} credentials of {user!r}")


def _read(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise _Truncated("the broker closed the connection")
        chunks += chunk
    return bytes(chunks)


def _string(value: bytes) -> bytes:
    return struct.pack(">h", len(value)) + value


def _nullable_string(data: bytes) -> tuple[str | None, bytes]:
    length = struct.unpack(">h", data[:2])[0]
    if length < 0:
        return None, data[2:]
    return data[2:2 + length].decode("utf-8", "replace"), data[2 + length:]


def _string_array(data: bytes) -> list[str]:
    count = struct.unpack(">i", data[:4])[0] if len(data) >= 4 else 0
    items, rest = [], data[4:]
    for _ in range(max(count, 0)):
        item, rest = _nullable_string(rest)
        items.append(item or "")
    return items
