"""ClickHouseSettings from URLs, error mapping, and the adapter's calls (with a fake driver client)."""

import math
import struct

import pytest
from clickhouse_driver import errors as ch

from schemas.errors import ConfigurationError
from store.errors import StoreError
from store.clickhouse import ClickHouseSettings, ClickHouseStore, _map_error


def test_defaults():
    s = ClickHouseSettings.from_url("clickhouse://127.0.0.1")
    assert s == ClickHouseSettings(host="127.0.0.1")
    assert (s.port, s.user, s.password, s.database, s.secure, s.verify, s.compression) == (
        9000, "default", "", "runstream", False, True, "none")


def test_full_url():
    s = ClickHouseSettings.from_url(
        "clickhouses://al%40ice:p%3Ass%2Fw@db.example:9441/metrics?verify=false&ca_certs=/etc/ca.pem"
        "&connect_timeout=2.5&send_receive_timeout=60&compression=none")
    assert s == ClickHouseSettings(host="db.example", port=9441, user="al@ice", password="p:ss/w", database="metrics",
                                   secure=True, verify=False, ca_certs="/etc/ca.pem", connect_timeout=2.5,
                                   send_receive_timeout=60.0)


def test_secure_port_default_and_flag():
    assert ClickHouseSettings.from_url("clickhouses://h/db").port == 9440
    assert ClickHouseSettings.from_url("clickhouse://h/db?secure=1").port == 9440
    assert ClickHouseSettings.from_url("clickhouse://h:9000/db?secure=yes").secure is True


def test_cluster_and_alternate_hosts():
    s = ClickHouseSettings.from_url("clickhouse://ch-1:9001/rs?cluster=runstream&alt_hosts=ch-2,ch-3:9003")
    assert (s.host, s.port, s.cluster) == ("ch-1", 9001, "runstream")
    assert s.alt_hosts == (("ch-2", 9001), ("ch-3", 9003))
    assert s.describe() == "default@ch-1:9001/rs (or ch-2:9001, ch-3:9003) on cluster runstream"
    plain = ClickHouseSettings.from_url("clickhouse://h/rs")
    assert (plain.alt_hosts, plain.cluster) == ((), None)


def test_password_never_shown():
    s = ClickHouseSettings.from_url("clickhouse://u:hunter2@h:9000/db")
    assert "hunter2" not in repr(s) and "hunter2" not in s.describe()
    assert "hunter2" not in repr(ClickHouseStore(s, client_factory=lambda _: FakeClient()))


@pytest.mark.parametrize("url, fragment", [
    ("clickhouse://h/db?secure=1&sslmode=require", "unknown ClickHouse URL parameter 'sslmode'"),
    ("clickhouse://h/db?database=x", "unknown"),
    ("clickhouse://h/db?secure=1&secure=0", "twice"),
    ("clickhouse://h/db?secure=maybe", "not a boolean"),
    ("clickhouse://h/db?connect_timeout=soon", "seconds"),
    ("clickhouse://h/db?connect_timeout=0", "positive"),
    ("clickhouse://h/db?compression=brotli", "compression"),
    ("clickhouse://h/db?verify=0", "TLS only"),
    ("clickhouse://h/db?ca_certs=/x.pem", "TLS only"),
    ("http://h:8123/db", "clickhouse://"),
    ("clickhouse:///db", "no host"),
    ("clickhouse://h:99999/db", "bad ClickHouse URL"),
    ("clickhouse://h/a/b", "just a database"),
    ("clickhouse://h/run-stream", "identifier"),
    ("clickhouse://h/x%60;DROP", "identifier"),
    ("clickhouse://h/db#frag", "fragment"),
    ("clickhouse://h/db?cluster=a-b", "cluster name"),
    ("clickhouse://h/db?cluster=", "cluster name"),
    ("clickhouse://h/db?alt_hosts=h2:x", "host\\[:port\\]"),
    ("clickhouse://h/db?alt_hosts=h2:99999", "alternate host"),
    ("clickhouse://h/db?alt_hosts=", "host\\[:port\\]"),
])
def test_bad_urls_are_config_errors(url, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        ClickHouseSettings.from_url(url)


def test_compression_needs_cityhash():
    settings = ClickHouseSettings.from_url("clickhouse://h/db?compression=lz4")
    try:
        import clickhouse_cityhash  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigurationError, match="compression=lz4"):
            ClickHouseStore(settings, client_factory=lambda _: FakeClient())
    else:  # pragma: no cover - depends on the environment
        ClickHouseStore(settings, client_factory=lambda _: FakeClient())


@pytest.mark.parametrize("exc, retriable", [
    (ch.NetworkError("Connection refused"), True),
    (ch.SocketTimeoutError("timed out"), True),
    (EOFError("Unexpected EOF while reading bytes"), True),
    (ConnectionResetError(104, "reset"), True),
    (ch.ServerException("DB::Exception: Memory limit exceeded", code=241), True),
    (ch.ServerException("DB::Exception: Too many parts", code=252), True),
    (ch.ServerException("DB::Exception: Syntax error", code=62), False),
    (ch.ServerException("DB::Exception: Table x doesn't exist.", code=60), False),
    (ch.ServerException("DB::Exception: No such column", code=16), False),
    (ch.TypeMismatchError("bad"), False),
    (struct.error("required argument is not an integer"), False),
    (TypeError("object of type 'int' has no len()"), False),
])
def test_error_mapping(exc, retriable):
    err = _map_error("insert into runs", "default@h:9000/db", exc)
    assert isinstance(err, StoreError)
    assert err.retriable is retriable
    assert "insert into runs" in str(err) and "default@h:9000/db" in str(err)


def test_server_stack_trace_is_cut():
    exc = ch.ServerException("Code: 60.\nDB::Exception: Table x doesn't exist. Stack trace:\n\n0. /usr/bin/x", code=60)
    err = _map_error("query", "h", exc)
    assert "Stack trace" not in str(err) and err.code == 60


class FakeClient:
    def __init__(self, fail=None, result=None):
        self.calls = []
        self.fail = fail
        self.result = result or []
        self.disconnects = 0

    def execute(self, sql, *args, **kwargs):
        self.calls.append((sql, args, kwargs))
        if self.fail is not None:
            raise self.fail
        return self.result

    def disconnect(self):
        self.disconnects += 1


def store(client):
    return ClickHouseStore(ClickHouseSettings(host="h", database="rs"), client_factory=lambda _: client)


def test_write_is_one_columnar_insert_in_table_order():
    client = FakeClient()
    store(client).write("writer_progress", {"seq": [3, 4], "writer_id": ["w", "v"], "run_id": ["r", "r"]})
    assert client.calls == [("INSERT INTO `rs`.`writer_progress` (writer_id, run_id, seq) VALUES",
                             ([["w", "v"], ["r", "r"], [3, 4]],), {"columnar": True})]


def test_cluster_inserts_are_synchronous_and_ddl_waits_a_bounded_time():
    client = FakeClient()
    s = ClickHouseStore(ClickHouseSettings(host="h", database="rs", cluster="c1"), client_factory=lambda _: client)
    s.write("writer_progress", {"seq": [3], "writer_id": ["w"], "run_id": ["r"]})
    s.execute_ddl("CREATE DATABASE IF NOT EXISTS `rs` ON CLUSTER c1")
    assert [kwargs for _, _, kwargs in client.calls] == [
        {"columnar": True, "settings": {"insert_distributed_sync": 1}},
        {"settings": {"distributed_ddl_task_timeout": 60}},
    ]


@pytest.mark.parametrize("active, raised", [(0, False), (1, True)])
def test_cluster_ddl_timeout_is_tolerated_only_when_the_late_servers_are_down(active, raised, caplog):
    from clickhouse_driver.errors import ServerException

    message = (f"Watching task /clickhouse/task_queue/ddl/query-0000000003 is executing longer than "
               f"distributed_ddl_task_timeout (=60) seconds. There are 1 unfinished hosts ({active} of them "
               f"are currently active), they are going to execute the query in background")
    client = FakeClient(fail=ServerException(message, code=159))
    s = ClickHouseStore(ClickHouseSettings(host="h", database="rs", cluster="c1"), client_factory=lambda _: client)
    if raised:
        with pytest.raises(StoreError):
            s.execute_ddl("CREATE TABLE ...")
    else:
        s.execute_ddl("CREATE TABLE ...")
        assert "will apply this DDL when back" in caplog.text


def test_empty_batch_sends_nothing():
    client = FakeClient()
    store(client).write("runs", {"run_id": []})
    assert client.calls == []


@pytest.mark.parametrize("table, columns", [
    ("nope", {"a": [1]}),
    ("runs", {}),
    ("runs", {"run_id": ["r"], "evil; DROP TABLE runs": ["x"]}),
    ("runs", {"run_id": ["r", "s"], "experiment": ["e"]}),
])
def test_malformed_batches_are_value_errors(table, columns):
    client = FakeClient()
    with pytest.raises(ValueError):
        store(client).write(table, columns)
    assert client.calls == []


def test_query_rewrites_placeholders_and_returns_rows():
    client = FakeClient(result=[("a", 1.5)])
    rows = store(client).query("SELECT name, value FROM {db}.metric_scalars WHERE run_id = {run:String} "
                               "AND value > {v:Float64}", {"run": "r'1", "v": -math.inf})
    assert rows == [("a", 1.5)]
    sql, args, _ = client.calls[0]
    assert sql == ("SELECT name, value FROM `rs`.metric_scalars WHERE run_id = %(run)s AND value > "
                   "CAST(%(v)s AS Float64)")
    assert args == ({"run": "r'1", "v": -math.inf},)


def test_failures_become_sink_errors_chained():
    s = store(FakeClient(fail=ch.NetworkError("down")))
    with pytest.raises(StoreError) as info:
        s.query("SELECT 1")
    assert info.value.retriable and isinstance(info.value.__cause__, ch.NetworkError)
    s = store(FakeClient(fail=ch.ServerException("Unknown table", code=60)))
    with pytest.raises(StoreError) as info:
        s.write("runs", {"run_id": ["r"]})
    assert not info.value.retriable


def test_server_version_is_asked_once_and_close_disconnects():
    client = FakeClient(result=[("18.16.1",)])
    s = store(client)
    assert s.server_version == "18.16.1" and s.server_version == "18.16.1"
    assert [c[0] for c in client.calls] == ["SELECT version()"]
    s.close()
    s.close()
    assert client.disconnects == 2
