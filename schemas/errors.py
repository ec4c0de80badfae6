"""The runstream error tree.

Every error the pipeline raises on purpose derives from :class:`PipelineError`.
Each class carries ``retriable``: True means "the same thing may work later"
(a broker or server outage), False means "this input is bad" (reject it,
dead-letter it, never retry it)::

    PipelineError
    ├── ContractError                  schemas: the wire contract
    │   ├── EncodeError                a record cannot be encoded (ValueError)
    │   └── DecodeError                bytes are not a valid runstream event (.reason)
    ├── ConfigurationError             schemas: bad settings, runstream.json, flags or limits (ValueError)
    ├── AccessDenied                   a server answered and refused this client (never retriable)
    │   ├── CertificateUntrusted       its TLS certificate is not signed by the trusted CA (schemas.kafka_login)
    │   ├── TlsHandshakeFailed         it does not speak TLS on that port
    │   ├── AuthenticationFailed       wrong user or password, or a SASL mechanism it does not offer
    │   └── NotAuthorized              logged in, but an ACL forbids the operation (schemas.kafka_client)
    ├── store.errors.StoreError        ClickHouse / chDB refused or unreachable (retriable per instance)
    │   ├── StoreBusy                  another process holds the chDB directory
    │   └── OwnerUnavailable           nobody answers on a home's query socket
    ├── producers.errors.SdkError      the training-side API
    │   ├── InvalidLogCall             bad argument at call time (ValueError)
    │   ├── InvalidValueType           unsupported value type (TypeError)
    │   ├── RunNotActive               logging to a finished run
    │   ├── TransportError             Kafka / spool could not take the bytes (retriable)
    │   ├── ReadError                  reading a run back failed
    │   └── JobFailed                  a submitted script failed
    └── consumers.errors.IngestError   the ingest side
        ├── InvalidEvent               decoded, but breaks a rule (dead-lettered)
        │   └── RunLimitExceeded       over a per-run limit (dead-lettered)
        ├── SourceError                Kafka / spool source failure (retriable)
        └── DeadLetterError            the dead letters could not take a message (retriable)

The root and the shared leaves live here, in the lowest layer, because every
other package imports them.
"""

from __future__ import annotations

__all__ = ["PipelineError", "ContractError", "EncodeError", "DecodeError", "ConfigurationError", "AccessDenied"]


class PipelineError(Exception):
    """Root of every error runstream raises on purpose."""

    retriable: bool = False


class ContractError(PipelineError):
    """The wire contract was broken, on the way in or out."""


class EncodeError(ContractError, ValueError):
    """A record could not be encoded with its schema."""


class DecodeError(ContractError):
    """Bytes are not a valid runstream event.

    ``reason`` is a short, bounded token (``empty``, ``bad_marker``,
    ``unknown_fingerprint``, ``truncated``, ``trailing_bytes``, ``too_large``,
    ``malformed``) fit for a metrics label and a dead-letter header.
    """

    REASONS = frozenset(
        {"empty", "bad_marker", "unknown_fingerprint", "truncated", "trailing_bytes", "too_large", "malformed"}
    )

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown DecodeError reason {reason!r}")
        self.reason = reason
        self.detail = detail[:300]
        super().__init__(f"{reason}: {self.detail}" if self.detail else reason)


class ConfigurationError(PipelineError, ValueError):
    """Settings, a ``runstream.json``, command-line flags or limits are invalid; found at start, never retried."""


class AccessDenied(PipelineError):
    """A server answered and refused this client: an untrusted certificate, a wrong password, a
    missing permission. Retrying cannot help; the message says what was refused (never a password)."""

    retriable = False
