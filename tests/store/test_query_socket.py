"""The home's query socket: named read queries only, typed values both ways, the owner's sync and release."""

import math
import uuid

import pytest

from store.errors import OwnerUnavailable, StoreError
from store.query_socket import QueryClient, QueryServer, SocketLimits


class Queries:
    """A ReadQueries recording what it was asked."""

    def __init__(self):
        self.calls = []

    def fetch(self, name, params):
        self.calls.append((name, params))
        if params.get("run") == "boom":
            raise RuntimeError("bad query")
        return [("a", 1, math.nan, b"\x00\xff", [1.5, 2.0]), ("b", 2, math.inf, b"", [])]


def serve(queries, **kwargs):
    server = QueryServer(queries, f"\0runstream-test-{uuid.uuid4().hex}", **kwargs)
    server.start()
    return server


def test_round_trip_keeps_types():
    queries = Queries()
    server = serve(queries, info={"role": "ingest"})
    try:
        client = QueryClient(server.address, timeout_s=5)
        assert client.ping()["role"] == "ingest"
        rows = client.fetch("images", {"run": "va'lue", "names": ["a", "b"]})
        assert rows[0][:2] == ("a", 1) and math.isnan(rows[0][2]) and rows[0][3] == b"\x00\xff"
        assert rows[1][2] == math.inf and rows[0][4] == [1.5, 2.0]
        assert queries.calls[-1] == ("images", {"run": "va'lue", "names": ["a", "b"]})
        with pytest.raises(StoreError, match="bad query"):
            client.fetch("logs", {"run": "boom"})
        assert server.last_request is not None
    finally:
        server.stop()


def test_the_client_sends_only_the_querys_own_parameters_and_the_owner_takes_no_others():
    queries = Queries()
    server = serve(queries)
    try:
        client = QueryClient(server.address, timeout_s=5)
        client.fetch("logs", {"run": "r", "experiment": "e"})  # one dict shared by several queries, as in process
        assert queries.calls[-1] == ("logs", {"run": "r"})
        with pytest.raises(StoreError, match="takes exactly the parameters"):
            client._call({"op": "fetch", "query": "logs", "params": {"run": "r", "experiment": "e"}})
    finally:
        server.stop()


def test_every_read_query_has_parameter_types_the_socket_checks():
    from store.queries import READ_QUERIES
    from store.query_socket import _CHECKED_TYPES
    from store.sql import placeholders

    used = {t for sql in READ_QUERIES.values() for t in placeholders(sql).values()}
    unchecked = {t for t in used if t.removeprefix("Array(").removesuffix(")") not in _CHECKED_TYPES}
    assert unchecked == set()


@pytest.mark.parametrize(("typ", "good", "bad"), [
    ("Float64", [1.5, -2, 1.7e308], ["1.5", True, None]),
    ("Int64", [0, -(1 << 63)], [1 << 63, 1.0, False]),
    ("UInt32", [0, (1 << 32) - 1], [-1, 1 << 32, "3"]),
    ("Array(UInt32)", [[], [0, 7]], [[-1], ["a"], 5]),
    ("Array(Int64)", [[1, -1]], [[1.5]]),
])
def test_numeric_parameters_are_typed(typ, good, bad):
    from store.query_socket import _value_ok

    limits = SocketLimits()
    assert all(_value_ok(typ, v, limits) for v in good)
    assert not any(_value_ok(typ, v, limits) for v in bad)
    assert not _value_ok("Date", "2026-01-01", limits)  # unknown types are refused


def test_nobody_listening():
    client = QueryClient(f"\0runstream-test-{uuid.uuid4().hex}", timeout_s=1)
    assert client.ping() is None
    assert not client.release()
    with pytest.raises(OwnerUnavailable):
        client.fetch("logs", {"run": "r"})


def test_only_named_read_queries_are_served():
    queries = Queries()
    server = serve(queries)
    try:
        client = QueryClient(server.address, timeout_s=5)
        with pytest.raises(StoreError, match="unknown read query"):
            client.fetch("DROP TABLE runstream.runs", {})
        with pytest.raises(StoreError, match="SQL text is not accepted"):
            client._call({"op": "query", "sql": "SELECT 1"})
        with pytest.raises(StoreError, match="unknown op"):
            client._call({"op": "query"})
        assert queries.calls == []
    finally:
        server.stop()


def test_sync_and_release_reach_the_owner():
    asked = []
    server = serve(Queries(), sync=lambda timeout: asked.append(("sync", timeout)) or True,
                   release=lambda: asked.append(("release",)) or True)
    try:
        client = QueryClient(server.address, timeout_s=5)
        assert client.sync(3.0) and client.release()
        assert asked == [("sync", 3.0), ("release",)]
    finally:
        server.stop()
    plain = serve(Queries())
    try:
        client = QueryClient(plain.address, timeout_s=5)
        assert not client.sync(1.0) and not client.release()
    finally:
        plain.stop()


class FakeTime:
    """A clock that a read query advances by its duration; sleeps advance it too."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_reads_are_paced_to_their_share_of_the_owners_time():
    fake = FakeTime()

    class SlowQueries:
        def fetch(self, name, params):
            fake.now += 1.0  # every read takes a second
            return []

    server = serve(SlowQueries(), limits=SocketLimits(reader_share=0.25, reader_burst_s=2.0),
                   clock=lambda: fake.now, sleep=fake.sleep)
    try:
        client = QueryClient(server.address, timeout_s=5)
        for _ in range(5):
            client.fetch("file_names", {"run": "r"})
    finally:
        server.stop()
    # 2 s of burst cover two reads; the third finds 0 s of credit, the fourth -1 s: 1 / 0.25 = 4 s of wait.
    assert fake.sleeps == [4.0, 4.0]
    assert fake.now == 5.0 + 8.0


def test_limits_are_checked():
    for bad in ({"max_clients": 0}, {"reader_share": 0}, {"reader_share": 1.5}, {"request_timeout_s": 0},
                {"reader_burst_s": -1}):
        with pytest.raises(ValueError):
            SocketLimits(**bad)


def test_encoded_results_are_parsed_by_the_reader():
    """An owner that can hand over chDB's own output sends it as it is; the reader parses it."""

    class EncodedQueries(Queries):
        def fetch_encoded(self, name, params):
            self.calls.append((name, params))
            return b'["name","value"]\n["String","Float64"]\n["loss","nan"]\n["acc",0.5]\n'

    queries = EncodedQueries()
    server = serve(queries)
    try:
        rows = QueryClient(server.address, timeout_s=5).fetch("file_names", {"run": "r"})
    finally:
        server.stop()
    assert rows[0][0] == "loss" and math.isnan(rows[0][1]) and rows[1] == ("acc", 0.5)
    assert queries.calls == [("file_names", {"run": "r"})]
