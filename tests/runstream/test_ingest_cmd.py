import json

import pytest

from runstream import cli
from runstream.ingest_cmd import build_settings
from schemas.errors import ConfigurationError


def config_of(argv, env=None):
    args = cli.build_parser().parse_args(["ingest", *argv])
    return build_settings(args, env or {})


def test_defaults_are_the_embedded_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = config_of([])
    assert c.kafka is None and c.clickhouse is None
    assert c.home == tmp_path / ".runstream"
    assert c.topic == "runstream.events" and c.group == "runstream-ingest" and c.dlq_topic == "runstream.events.dlq"
    assert c.metrics_port == 9464


def test_environment_and_flags(tmp_path):
    env = {"RUNSTREAM_KAFKA": "127.0.0.1:9092", "RUNSTREAM_CLICKHOUSE": "clickhouse://h:9000/db",
           "RUNSTREAM_HOME": str(tmp_path)}
    c = config_of(["--topic", "t1", "--metrics-port", "0", "--flush-rows", "10"], env)
    assert c.kafka == "127.0.0.1:9092" and c.clickhouse == "clickhouse://h:9000/db" and c.home == tmp_path
    assert c.topic == "t1" and c.metrics_port is None and c.flush_rows == 10
    c = config_of(["--kafka", "other:1", "--home", str(tmp_path / "h")], env)
    assert c.kafka == "other:1" and c.home == tmp_path / "h"


def test_limits_from_file_flags_and_home(tmp_path):
    f = tmp_path / "limits.json"
    f.write_text(json.dumps({"max_metric_names": 10, "max_tags": 5}))
    c = config_of(["--limits", str(f), "--limit", "max_tags=7", "--home", str(tmp_path / "x")])
    assert c.limits.max_metric_names == 10 and c.limits.max_tags == 7
    c = config_of(["--home", str(tmp_path)])  # <home>/limits.json
    assert c.limits.max_metric_names == 10
    with pytest.raises(ConfigurationError, match="unknown limit"):
        config_of(["--limit", "max_typo=1"])


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigurationError):
        config_of(["--clickhouse", "http://nope"])
    with pytest.raises(ConfigurationError):
        config_of(["--topic", "same", "--dlq-topic", "same"])


def test_registered_commands():
    parser = cli.build_parser()
    for argv in (["ingest"], ["spool", "status"], ["spool", "replay"]):
        assert callable(parser.parse_args(argv).handler)


def test_an_owner_started_on_demand_serves_no_metrics(tmp_path):
    c = config_of(["--on-demand", "--home", str(tmp_path), "--idle-exit", "5", "--parent-pid", "1"])
    assert c.metrics_port is None and c.home == tmp_path


def test_the_writer_url_is_where_ingest_writes():
    env = {"RUNSTREAM_CLICKHOUSE": "clickhouse://runstream_reader@h:9000/db"}
    c = config_of(["--clickhouse-writer", "clickhouse://runstream_writer@h:9000/db"], env)
    assert c.sink_clickhouse == ("clickhouse://runstream_writer@h:9000/db", None)
    with pytest.raises(ConfigurationError, match="RUNSTREAM_CLICKHOUSE_WRITER_PASSWORD") as caught:
        config_of(["--clickhouse-writer", "clickhouse://runstream_writer:hunter2@h:9000/db"], env)
    assert "hunter2" not in str(caught.value)
