"""The login check's SCRAM client, against RFC 7677's worked example (no broker needed)."""

from __future__ import annotations

import pytest

from schemas import kafka_login
from schemas.errors import AccessDenied
from schemas.kafka_login import AuthenticationFailed, CertificateUntrusted, TlsHandshakeFailed, check_kafka_login

# RFC 7677, section 3: user "user", password "pencil".
_NONCE = "rOprNGfwEbeRWgbNEkqO"
_SERVER_FIRST = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
_CLIENT_FINAL = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
_SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def _server(final: str) -> tuple[list[bytes], object]:
    sent: list[bytes] = []

    def authenticate(token: bytes) -> bytes:
        sent.append(token)
        return _SERVER_FIRST.encode() if len(sent) == 1 else final.encode()

    return sent, authenticate


def test_scram_sha256_matches_rfc7677() -> None:
    sent, authenticate = _server(_SERVER_FINAL)
    kafka_login._scram(authenticate, "sha256", "user", "pencil", "SCRAM-SHA-256", nonce=_NONCE)
    assert sent == [f"n,,n=user,r={_NONCE}".encode(), _CLIENT_FINAL.encode()]


def test_scram_refuses_a_server_that_does_not_know_the_password() -> None:
    _, authenticate = _server("v=" + "A" * 44)
    with pytest.raises(AuthenticationFailed, match="could not prove"):
        kafka_login._scram(authenticate, "sha256", "user", "pencil", "SCRAM-SHA-256", nonce=_NONCE)


def test_scram_reports_the_servers_error_without_the_password() -> None:
    _, authenticate = _server("e=invalid-proof")
    with pytest.raises(AuthenticationFailed) as caught:
        kafka_login._scram(authenticate, "sha256", "user", "pencil", "SCRAM-SHA-256", nonce=_NONCE)
    assert "invalid-proof" in str(caught.value) and "pencil" not in str(caught.value)


def test_login_errors_are_access_denied_which_retrying_cannot_fix() -> None:
    for error in (AuthenticationFailed, CertificateUntrusted, TlsHandshakeFailed):
        assert issubclass(error, AccessDenied) and error.retriable is False


def test_plaintext_needs_no_check() -> None:
    assert check_kafka_login("127.0.0.1:1", {"security_protocol": "PLAINTEXT"})  # without connecting


def test_a_server_that_does_not_answer_is_left_to_the_callers_outage_handling() -> None:
    assert not check_kafka_login(["127.0.0.1:1"], {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "u",
        "sasl_plain_password": "hunter2"}, timeout_s=1)


def test_exports() -> None:
    assert kafka_login.__all__ == ["AuthenticationFailed", "CertificateUntrusted", "TlsHandshakeFailed",
                                   "check_kafka_login"]
