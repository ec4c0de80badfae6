import math
import threading
import uuid

import pytest

from consumers.errors import SinkError
from consumers.query_server import QueryClient, QueryServer, QueryServerUnavailable


class Runner:
    def __init__(self):
        self.calls = []

    def query(self, sql, params=None):
        self.calls.append((sql, params))
        if sql == "SELECT boom":
            raise RuntimeError("bad query")
        return [("a", 1, math.nan, b"\x00\xff", [1.5, 2.0]), ("b", 2, math.inf, b"", [])]


def test_round_trip_keeps_types():
    runner = Runner()
    address = f"\0runstream-test-{uuid.uuid4().hex}"
    server = QueryServer(runner, address, threading.Lock())
    server.start()
    try:
        client = QueryClient(address, timeout_s=5)
        assert client.ping()
        rows = client.query("SELECT {x:String}", {"x": "va'lue", "names": ["a", "b"]})
        assert rows[0][:2] == ("a", 1) and math.isnan(rows[0][2]) and rows[0][3] == b"\x00\xff"
        assert rows[1][2] == math.inf and rows[0][4] == [1.5, 2.0]
        assert runner.calls[-1] == ("SELECT {x:String}", {"x": "va'lue", "names": ["a", "b"]})
        with pytest.raises(SinkError, match="bad query"):
            client.query("SELECT boom")
    finally:
        server.stop()


def test_nobody_listening():
    client = QueryClient(f"\0runstream-test-{uuid.uuid4().hex}", timeout_s=1)
    assert not client.ping()
    with pytest.raises(QueryServerUnavailable):
        client.query("SELECT 1")


def test_only_select_is_served():
    runner = Runner()
    address = f"\0runstream-test-{uuid.uuid4().hex}"
    server = QueryServer(runner, address, threading.Lock())
    server.start()
    try:
        with pytest.raises(SinkError, match="only SELECT"):
            QueryClient(address, timeout_s=5).query("DROP TABLE runstream.runs")
        assert runner.calls == []
    finally:
        server.stop()
