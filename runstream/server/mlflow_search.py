"""``runs/search`` and ``experiments/search``: MLflow's filter strings, ``order_by`` and paging.

A filter is comparisons joined by ``AND`` (MLflow has no ``OR``)::

    metrics.loss < 0.5 and params.optimizer = 'adam' and tags."mlflow.runName" LIKE 'lr-%'
    attributes.status IN ('FINISHED', 'FAILED') and attributes.start_time > 1700000000000

An identifier is ``<kind>.<key>`` (``metric``/``metrics``, ``param``/``params``/
``parameter``/``parameters``, ``tag``/``tags``, ``attribute``/``attributes``/
``attr``/``run``); a bare key is an attribute. Keys may be quoted with
backticks or double quotes. Metrics compare as numbers (the latest value),
params, tags and string attributes as strings (``=``, ``!=``, ``LIKE``,
``ILIKE``, ``IS [NOT] NULL``; ``[NOT] IN`` for ids). A run without the key
matches no comparison but ``IS NULL``.

Ordering follows MLflow's store: each ``order_by`` key in turn (missing values
and NaN last, whatever the direction), then ``start_time`` descending, then run
id. Filter values are data: they are matched in Python here, never turned into
SQL text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Sequence, TypeVar

from .mlflow_backend import Experiment, RunView
from .mlflow_wire import MlflowError, decode_page_token, encode_page_token

__all__ = [
    "Clause",
    "OrderKey",
    "RUN_ATTRIBUTES",
    "EXPERIMENT_ATTRIBUTES",
    "MAX_RUN_RESULTS",
    "MAX_EXPERIMENT_RESULTS",
    "parse_filter",
    "parse_order_by",
    "search_runs",
    "search_experiments",
]

Kind = Literal["metric", "param", "tag", "attribute"]
Value = float | str | tuple[str, ...] | None

_KINDS: Mapping[str, Kind] = {
    "metric": "metric", "metrics": "metric",
    "param": "param", "params": "param", "parameter": "param", "parameters": "param",
    "tag": "tag", "tags": "tag",
    "attribute": "attribute", "attributes": "attribute", "attr": "attribute", "run": "attribute",
}

RUN_ATTRIBUTES: Mapping[str, str] = {
    "run_id": "str", "run_name": "str", "status": "str", "user_id": "str", "artifact_uri": "str",
    "start_time": "num", "end_time": "num",
}
_RUN_ATTRIBUTE_ALIASES = {"created": "start_time", "Created": "start_time",
                          "run name": "run_name", "Run name": "run_name", "Run Name": "run_name"}
EXPERIMENT_ATTRIBUTES: Mapping[str, str] = {
    "name": "str", "experiment_id": "str", "creation_time": "num", "last_update_time": "num",
}
_LIST_KEYS = frozenset({"run_id", "experiment_id"})

MAX_RUN_RESULTS = 50_000
MAX_EXPERIMENT_RESULTS = 50_000

_NUM_OPS = frozenset({"=", "!=", ">", ">=", "<", "<="})
_STR_OPS = frozenset({"=", "!=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL"})
_ATTR_STR_OPS = frozenset({"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"})


@dataclass(frozen=True, slots=True)
class Clause:
    """One comparison: ``kind.key op value``."""

    kind: Kind
    key: str
    op: str
    value: Value


@dataclass(frozen=True, slots=True)
class OrderKey:
    """One ``order_by`` item."""

    kind: Kind
    key: str
    ascending: bool


# -- tokens -----------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    \s*(?:
      (?P<str>'(?:[^']|'')*')
    | (?P<dq>"(?:[^"]|"")*")
    | (?P<bt>`[^`]*`)
    | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
    | (?P<op>!=|<>|>=|<=|=|>|<)
    | (?P<punct>[(),])
    | (?P<word>[\w.:/\-]+)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # str | dq | bt | num | op | punct | word
    text: str


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise MlflowError.invalid(f"Invalid filter string {text!r}: cannot parse near {text[pos:pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append(_Token(kind, m.group(kind)))
        pos = m.end()
    return out


def _unquote(token: _Token) -> str:
    if token.kind == "str":
        return token.text[1:-1].replace("''", "'")
    if token.kind == "dq":
        return token.text[1:-1].replace('""', '"')
    if token.kind == "bt":
        return token.text[1:-1]
    return token.text


class _Parser:
    def __init__(self, text: str, attributes: Mapping[str, str], aliases: Mapping[str, str],
                 kinds: frozenset[Kind]) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.pos = 0
        self.attributes = attributes
        self.aliases = aliases
        self.kinds = kinds

    def error(self, what: str) -> MlflowError:
        return MlflowError.invalid(f"Invalid filter string {self.text!r}: {what}")

    def peek(self) -> _Token | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self) -> _Token:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end")
        self.pos += 1
        return tok

    def keyword(self, *words: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.text.upper() in words:
            self.pos += 1
            return True
        return False

    def identifier(self) -> tuple[Kind, str]:
        tok = self.take()
        if tok.kind in ("dq", "bt"):  # a quoted bare key: an attribute ("run name")
            return self.attribute(_unquote(tok))
        if tok.kind != "word":
            raise self.error(f"expected an identifier, got {tok.text!r}")
        prefix, dot, rest = tok.text.partition(".")
        if not dot:
            return self.attribute(prefix)
        kind = _KINDS.get(prefix.lower())
        if kind is None or kind not in self.kinds:
            raise self.error(f"invalid entity type {prefix!r}; use one of "
                             f"{', '.join(sorted(k for k, v in _KINDS.items() if v in self.kinds))}")
        if rest:
            key = rest
        else:  # metrics."a b" / metrics.`a b`
            quoted = self.take()
            if quoted.kind not in ("dq", "bt"):
                raise self.error(f"expected a key after {tok.text!r}")
            key = _unquote(quoted)
        if kind == "attribute":
            return self.attribute(key)
        return kind, key

    def attribute(self, key: str) -> tuple[Kind, str]:
        key = self.aliases.get(key, key)
        if key not in self.attributes:
            raise self.error(f"invalid attribute key {key!r}; valid keys are {', '.join(sorted(self.attributes))}")
        return "attribute", key

    def value(self) -> _Token:
        return self.take()

    def clause(self) -> Clause:
        kind, key = self.identifier()
        numeric = kind == "metric" or (kind == "attribute" and self.attributes[key] == "num")
        if self.keyword("IS"):
            negated = self.keyword("NOT")
            if not self.keyword("NULL"):
                raise self.error("expected NULL after IS")
            op = "IS NOT NULL" if negated else "IS NULL"
            if kind not in ("param", "tag"):
                raise self.error(f"{op} is only supported for params and tags")
            return Clause(kind, key, op, None)
        if self.keyword("NOT"):
            if not self.keyword("IN"):
                raise self.error("expected IN after NOT")
            return self.in_list(kind, key, "NOT IN")
        if self.keyword("IN"):
            return self.in_list(kind, key, "IN")
        if self.keyword("LIKE"):
            op = "LIKE"
        elif self.keyword("ILIKE"):
            op = "ILIKE"
        else:
            tok = self.take()
            if tok.kind != "op":
                raise self.error(f"expected a comparator after {key!r}, got {tok.text!r}")
            op = "!=" if tok.text == "<>" else tok.text
        allowed = _NUM_OPS if numeric else (_ATTR_STR_OPS if kind == "attribute" else _STR_OPS)
        if op not in allowed:
            raise self.error(f"comparator {op!r} is not supported for {kind} {key!r}")
        tok = self.value()
        if numeric:
            if tok.kind != "num":
                raise self.error(f"expected a number for {kind} {key!r}, got {tok.text!r}")
            return Clause(kind, key, op, float(tok.text))
        if tok.kind not in ("str", "dq"):
            raise self.error(f"expected a quoted string for {kind} {key!r}, got {tok.text!r}")
        return Clause(kind, key, op, _unquote(tok))

    def in_list(self, kind: Kind, key: str, op: str) -> Clause:
        if kind != "attribute" or key not in _LIST_KEYS:
            raise self.error(f"{op} is only supported for {', '.join(sorted(_LIST_KEYS & set(self.attributes)))}")
        if self.take().text != "(":
            raise self.error(f"expected '(' after {op}")
        values: list[str] = []
        while True:
            tok = self.take()
            if tok.kind not in ("str", "dq"):
                raise self.error(f"expected a quoted string in the {op} list, got {tok.text!r}")
            values.append(_unquote(tok))
            sep = self.take()
            if sep.text == ")":
                return Clause(kind, key, op, tuple(values))
            if sep.text != ",":
                raise self.error(f"expected ',' or ')' in the {op} list, got {sep.text!r}")

    def clauses(self) -> list[Clause]:
        out: list[Clause] = []
        if self.peek() is None:
            return out
        out.append(self.clause())
        while self.peek() is not None:
            if not self.keyword("AND"):
                raise self.error(f"expected AND, got {self.take().text!r} (MLflow filters join comparisons with AND only)")
            out.append(self.clause())
        return out


_RUN_KINDS: frozenset[Kind] = frozenset({"metric", "param", "tag", "attribute"})
_EXPERIMENT_KINDS: frozenset[Kind] = frozenset({"tag", "attribute"})


def parse_filter(text: str | None, *, experiments: bool = False) -> list[Clause]:
    """The clauses of a ``runs/search`` (or, with ``experiments``, ``experiments/search``) filter."""
    if not text or not text.strip():
        return []
    if experiments:
        return _Parser(text, EXPERIMENT_ATTRIBUTES, {}, _EXPERIMENT_KINDS).clauses()
    return _Parser(text, RUN_ATTRIBUTES, _RUN_ATTRIBUTE_ALIASES, _RUN_KINDS).clauses()


def parse_order_by(items: Sequence[str], *, experiments: bool = False) -> list[OrderKey]:
    """``order_by`` items such as ``metrics.loss DESC`` or ``attributes.start_time``."""
    keys: list[OrderKey] = []
    seen: set[tuple[str, str]] = set()
    for item in items:
        text = item.strip()
        ascending = True
        m = re.search(r"\s+(asc|desc)$", text, re.IGNORECASE)
        if m:
            ascending = m.group(1).lower() == "asc"
            text = text[: m.start()]
        if experiments:
            parser = _Parser(text, EXPERIMENT_ATTRIBUTES, {}, frozenset({"attribute"}))
        else:
            parser = _Parser(text, RUN_ATTRIBUTES, _RUN_ATTRIBUTE_ALIASES, _RUN_KINDS)
        try:
            kind, key = parser.identifier()
        except MlflowError:
            raise MlflowError.invalid(f"Invalid order_by clause {item!r}") from None
        if parser.peek() is not None:
            raise MlflowError.invalid(f"Invalid order_by clause {item!r}")
        if (kind, key) in seen:
            raise MlflowError.invalid(f"`order_by` contains duplicate fields: {list(items)}")
        seen.add((kind, key))
        keys.append(OrderKey(kind, key, ascending))
    return keys


# -- evaluation -------------------------------------------------------------------------

Lookup = Callable[[Kind, str], float | str | None]


def _like(pattern: str, flags: int) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(parts), flags | re.DOTALL)


def _compare(clause: Clause, actual: float | str | None) -> bool:
    op, expected = clause.op, clause.value
    if op == "IS NULL":
        return actual is None
    if op == "IS NOT NULL":
        return actual is not None
    if actual is None:
        return False
    if op in ("IN", "NOT IN"):
        assert isinstance(expected, tuple)
        return (actual in expected) == (op == "IN")
    if isinstance(expected, float):
        if not isinstance(actual, float):
            return False
        if math.isnan(actual):
            return op == "!="
        return {
            "=": actual == expected, "!=": actual != expected, ">": actual > expected,
            ">=": actual >= expected, "<": actual < expected, "<=": actual <= expected,
        }[op]
    assert isinstance(expected, str)
    text = str(actual)
    if op == "=":
        return text == expected
    if op == "!=":
        return text != expected
    if op == "LIKE":
        return _like(expected, 0).fullmatch(text) is not None
    return _like(expected, re.IGNORECASE).fullmatch(text) is not None  # ILIKE


def _matches(clauses: Sequence[Clause], lookup: Lookup) -> bool:
    return all(_compare(c, lookup(c.kind, c.key)) for c in clauses)


def _run_lookup(run: RunView, artifact_uri: str) -> Lookup:
    latest: dict[str, float] | None = None

    def lookup(kind: Kind, key: str) -> float | str | None:
        nonlocal latest
        if kind == "metric":
            if latest is None:
                latest = {m.key: m.value for m in run.metrics}
            return latest.get(key)
        if kind == "param":
            return run.params.get(key)
        if kind == "tag":
            return run.tags.get(key)
        info = run.info
        if key == "start_time":
            return float(info.start_time)
        if key == "end_time":
            return None if info.end_time is None else float(info.end_time)
        if key == "artifact_uri":
            return artifact_uri
        value: str = getattr(info, key)
        return value

    return lookup


def _experiment_lookup(exp: Experiment) -> Lookup:
    def lookup(kind: Kind, key: str) -> float | str | None:
        if kind == "tag":
            return exp.tags.get(key)
        value = getattr(exp, key)
        return float(value) if isinstance(value, int) else str(value)

    return lookup


T = TypeVar("T")


def _ordered(items: list[T], keys: Sequence[OrderKey], lookup_of: Callable[[T], Lookup]) -> list[T]:
    # Stable sorts, least significant key first; missing values and NaN stay last either way.
    for key in reversed(keys):
        present: list[tuple[float | str, T]] = []
        nans: list[T] = []
        missing: list[T] = []
        for item in items:
            value = lookup_of(item)(key.kind, key.key)
            if value is None:
                missing.append(item)
            elif isinstance(value, float) and math.isnan(value):
                nans.append(item)
            else:
                present.append((value, item))
        present.sort(key=lambda pair: pair[0], reverse=not key.ascending)
        items = [item for _, item in present] + nans + missing
    return items


def _page(items: list[T], max_results: int, page_token: str | None) -> tuple[list[T], str | None]:
    offset = decode_page_token(page_token)
    end = offset + max_results
    return items[offset:end], (encode_page_token(end) if end < len(items) else None)


def _check_max_results(max_results: int, limit: int) -> None:
    if max_results < 1 or max_results > limit:
        raise MlflowError.invalid(
            f"Invalid value {max_results} for parameter 'max_results' supplied: it must be between 1 and {limit}"
        )


def search_runs(runs: Sequence[RunView], *, filter_string: str | None, order_by: Sequence[str],
                max_results: int, page_token: str | None,
                artifact_uri: Callable[[RunView], str]) -> tuple[list[RunView], str | None]:
    """One page of the runs matching ``filter_string``, in MLflow's order, and the next page's token."""
    _check_max_results(max_results, MAX_RUN_RESULTS)
    clauses = parse_filter(filter_string)
    keys = parse_order_by(order_by)
    lookups: dict[str, Lookup] = {r.info.run_id: _run_lookup(r, artifact_uri(r)) for r in runs}
    matched = [r for r in runs if _matches(clauses, lookups[r.info.run_id])]
    # Tie-breakers first (least significant): run id ascending, start time descending.
    matched.sort(key=lambda r: r.info.run_id)
    tail: list[OrderKey] = []
    if not any(k.kind == "attribute" and k.key == "start_time" for k in keys):
        tail.append(OrderKey("attribute", "start_time", False))
    ordered = _ordered(matched, [*keys, *tail], lambda r: lookups[r.info.run_id])
    return _page(ordered, max_results, page_token)


def search_experiments(experiments: Sequence[Experiment], *, filter_string: str | None,
                       order_by: Sequence[str], max_results: int,
                       page_token: str | None) -> tuple[list[Experiment], str | None]:
    """One page of the experiments matching ``filter_string`` (default order: newest first, then id)."""
    _check_max_results(max_results, MAX_EXPERIMENT_RESULTS)
    clauses = parse_filter(filter_string, experiments=True)
    keys = parse_order_by(order_by or ["creation_time DESC", "experiment_id ASC"], experiments=True)
    matched = [e for e in experiments if _matches(clauses, _experiment_lookup(e))]
    matched.sort(key=lambda e: e.experiment_id)
    return _page(_ordered(matched, keys, _experiment_lookup), max_results, page_token)
