import dataclasses
import json
from pathlib import Path

import pytest

from producers import ConfigurationError, Workspace, WorkspaceSettings
from schemas.settings import find_config
from schemas import RunLimits


def test_nothing_configured_is_the_embedded_default(tmp_path: Path) -> None:
    s = WorkspaceSettings.resolve(env={})
    assert s.embedded and s.kafka is None and s.clickhouse is None
    assert s.home == tmp_path / ".runstream"  # the fixture chdir'ed here
    assert s.spool_dir == s.home / "spool" and s.outbox_dir == s.home / "outbox"
    assert s.topic == "runstream.events"
    assert s.limits == RunLimits()


def test_environment_fills_what_arguments_leave_out() -> None:
    env = {"RUNSTREAM_KAFKA": "k1:9092,k2:9092", "RUNSTREAM_CLICKHOUSE": "clickhouse://u:p@h:9000/db",
           "RUNSTREAM_HOME": "/tmp/rs-home", "RUNSTREAM_TOPIC": "t.env"}
    s = WorkspaceSettings.resolve({"topic": "t.arg", "kafka": None}, env=env)
    assert s.kafka == "k1:9092,k2:9092" and s.topic == "t.arg"
    assert s.clickhouse == "clickhouse://u@h:9000/db" and s.home == Path("/tmp/rs-home")  # password moved out
    assert s.clickhouse_password is not None and s.clickhouse_password.reveal() == "p"
    assert s.kafka_client_options()["bootstrap_servers"] == ["k1:9092", "k2:9092"]


def test_empty_environment_values_count_as_unset() -> None:
    assert WorkspaceSettings.resolve(env={"RUNSTREAM_KAFKA": ""}).kafka is None


def test_workspace_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNSTREAM_TOPIC", "from.env")
    assert Workspace().settings.topic == "from.env"
    assert Workspace(topic="explicit").settings.topic == "explicit"


def test_config_file_env_and_arguments_in_precedence(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "runstream.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"kafka": "file:9092", "topic": "file.topic", "home": "data",
                                "limits": {"max_tags": 5}, "linger_ms": 20, "heartbeat_interval_s": 2}))
    s = WorkspaceSettings.from_file(path, env={"RUNSTREAM_TOPIC": "env.topic"})
    assert s.kafka == "file:9092" and s.topic == "env.topic"
    assert s.home == tmp_path / "cfg" / "data"  # relative to the file
    assert s.limits.max_tags == 5 and s.linger_ms == 20 and s.heartbeat_interval_s == 2.0
    s2 = WorkspaceSettings.from_file(path, explicit={"topic": "arg.topic"}, env={"RUNSTREAM_TOPIC": "env.topic"})
    assert s2.topic == "arg.topic"


@pytest.mark.parametrize(
    "content, message",
    [
        ({"kafak": "x:1"}, "unknown setting"),
        ({"limits": {"max_tagz": 1}}, "unknown limit"),
        ({"kafka": "no-port"}, "host:port"),
        ({"topic": "bad topic"}, "topic"),
        ({"on_buffer_full": "drop"}, "on_buffer_full"),
        ({"linger_ms": 0}, "linger_ms"),
        ({"clickhouse": "http://x"}, "clickhouse://"),
        ({"kafka_options": {"acks": 0}}, "manages"),
        ({"file_chunk_bytes": 2 * 1024 * 1024}, "900 KiB"),
        ({"heartbeat_interval_s": -1}, "heartbeat_interval_s"),
    ],
)
def test_bad_config_files_are_rejected(tmp_path: Path, content: dict, message: str) -> None:
    path = tmp_path / "runstream.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigurationError, match=message):
        WorkspaceSettings.from_file(path, env={})


def test_config_file_must_be_a_json_object(tmp_path: Path) -> None:
    path = tmp_path / "runstream.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigurationError, match="JSON object"):
        WorkspaceSettings.from_file(path, env={})
    path.write_text("{not json")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        WorkspaceSettings.from_file(path, env={})


def test_unknown_workspace_option_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="lingerms"):
        Workspace(lingerms=3)


def test_settings_and_individual_values_do_not_mix() -> None:
    with pytest.raises(ConfigurationError, match="either"):
        Workspace(topic="x", settings=WorkspaceSettings())


def test_settings_are_frozen() -> None:
    s = WorkspaceSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.topic = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        WorkspaceSettings("positional")  # type: ignore[misc]


def test_from_config_finds_the_nearest_file_upward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "runstream.json").write_text(json.dumps({"topic": "found.upward"}))
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_config() == tmp_path / "runstream.json"
    assert Workspace.from_config().settings.topic == "found.upward"
    assert Workspace.default().settings.topic == "found.upward"


def test_from_config_uses_runstream_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "elsewhere.json"
    path.write_text(json.dumps({"topic": "via.env"}))
    monkeypatch.setenv("RUNSTREAM_CONFIG", str(path))
    assert Workspace.from_config(topic=None).settings.topic == "via.env"
    monkeypatch.setenv("RUNSTREAM_CONFIG", str(tmp_path / "missing.json"))
    with pytest.raises(ConfigurationError, match="not a file"):
        Workspace.from_config()


def test_from_config_without_a_file_says_so() -> None:
    with pytest.raises(ConfigurationError, match="no runstream.json"):
        Workspace.from_config()
    assert Workspace.default().settings.embedded


def test_limits_are_injectable() -> None:
    limits = RunLimits(max_tags=3)
    assert Workspace(limits=limits).settings.limits is limits
    with pytest.raises(ConfigurationError, match="RunLimits"):
        Workspace(limits={"max_tags": 3})


def test_repr_names_the_target() -> None:
    assert "embedded" in repr(Workspace())
    assert "kafka='h:1'" in repr(Workspace(kafka="h:1"))
