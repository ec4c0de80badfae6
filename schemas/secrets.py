"""Passwords kept out of logs, errors, reprs and command lines.

- :class:`Secret` holds a password; its ``repr`` and ``str`` are ``'***'``, so a
  settings object that holds one can be logged. :meth:`Secret.reveal` is the one
  way to the value, called where a client library needs it.
- :func:`secret_from_env` reads ``NAME`` or ``NAME_FILE`` (never both); a file is
  the way to keep a password out of the environment of every child process.
- :func:`read_secret_file` warns (:class:`ReadableSecretWarning`) when the file
  is readable by the group or others, as does :func:`check_private_file` for a
  settings file that holds a password.
- :func:`redact_url` drops the password from ``scheme://user:password@host/...``;
  :func:`redact` replaces known secret values anywhere in a text (exception
  messages from client libraries may quote what they were given).
- :class:`RedactingFilter` does that to every log record; an entry point puts it
  on its log handlers once it knows its passwords (:func:`redact_logs`).
"""

from __future__ import annotations

import logging
import os
import re
import stat
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import PipelineError

__all__ = [
    "RedactingFilter",
    "ReadableSecretWarning",
    "Secret",
    "SecretError",
    "check_private_file",
    "has_password",
    "read_secret_file",
    "redact",
    "redact_logs",
    "redact_url",
    "secret_from_env",
]

MASK = "***"


class SecretError(PipelineError, ValueError):
    """A password setting is contradictory, empty or unreadable."""


class ReadableSecretWarning(UserWarning):
    """A file holding a password can be read by other users of the machine."""


class Secret:
    """A password; prints as ``***`` everywhere, :meth:`reveal` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str")
        self._value = value

    def reveal(self) -> str:
        """The password itself, for the client library that needs it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:  # picklable, e.g. to a submitted job
        return (Secret, (self._value,))


def check_private_file(path: str | os.PathLike[str], what: str = "file") -> None:
    """Warn when ``path`` can be read by its group or by others (it holds a password)."""
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(
            f"{what} {os.fspath(path)} holds a password but is readable by other users "
            f"(mode {stat.filemode(mode)}); run: chmod 600 {os.fspath(path)}",
            ReadableSecretWarning,
            stacklevel=3,
        )


def read_secret_file(path: str | os.PathLike[str]) -> Secret:
    """The password in ``path`` (one line; the trailing newline is dropped); warns when others can read it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretError(f"cannot read the password file {os.fspath(path)}: {exc.strerror or exc}") from None
    value = text.rstrip("\r\n")
    if not value:
        raise SecretError(f"the password file {os.fspath(path)} is empty")
    check_private_file(path, "password file")
    return Secret(value)


def secret_from_env(env: Mapping[str, str], name: str) -> Secret | None:
    """``env[name]``, or the content of the file named by ``env[name + '_FILE']``, or None."""
    direct, file_name = env.get(name), env.get(f"{name}_FILE")
    if direct and file_name:
        raise SecretError(f"set {name} or {name}_FILE, not both")
    if file_name:
        return read_secret_file(Path(file_name).expanduser())
    return Secret(direct) if direct else None


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``; anything unparsable is masked whole."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return MASK
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@")
_KEYED = re.compile(r"""(?P<key>['"]?\w*password\w*['"]?\s*[:=]\s*)(?P<quote>['"])(?P<value>.*?)(?P=quote)""",
                    re.IGNORECASE)
"""A password in a printed mapping or keyword list: ``'sasl_plain_password': '...'``, ``password="..."``."""


def redact(text: str, secrets: Iterable[Secret | str | None] = ()) -> str:
    """``text`` with every ``scheme://user:password@``, every quoted ``...password...: '...'`` value and
    every given secret value masked."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _KEYED.sub(lambda m: f"{m['key']}{m['quote']}{MASK}{m['quote']}", text)
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value:
            text = text.replace(value, MASK)
    return text


def has_password(url: str) -> bool:
    """True when ``url`` carries a password (``scheme://user:password@host``)."""
    try:
        return bool(urlsplit(url).password)
    except ValueError:
        return False


class RedactingFilter(logging.Filter):
    """Masks URL passwords and the given secrets in every record it sees (message and arguments, formatted)."""

    def __init__(self, secrets: Iterable[Secret | str | None] = ()) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self._secrets)
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if redact(text, self._secrets) != text:  # a traceback quoting a password: keep only its text
                cleaned = f"{cleaned}\n{redact(text, self._secrets)}"
                record.exc_info = None
                record.exc_text = None
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redact_logs(secrets: Iterable[Secret | str | None] = (), *, logger: logging.Logger | None = None) -> None:
    """Put a :class:`RedactingFilter` for ``secrets`` on every handler of ``logger`` (the root logger)."""
    target = logger if logger is not None else logging.getLogger()
    redactor = RedactingFilter(secrets)
    for handler in target.handlers:
        handler.addFilter(redactor)
