"""``runstream exporter``'s settings: flags, then the environment, then the local stack."""

from __future__ import annotations

import pytest

from runstream import exporter_cmd
from runstream.cli import build_parser
from schemas.errors import ConfigurationError
from schemas.settings import ExporterSettings


def settings_of(argv: list[str], env: dict[str, str] | None = None) -> ExporterSettings:
    return exporter_cmd.build_settings(build_parser().parse_args(["exporter", *argv]), env or {})


def test_defaults_are_the_local_stack_and_match_the_ingest_worker() -> None:
    s = settings_of([])
    assert (s.kafka, s.clickhouse) == ("127.0.0.1:9092", "clickhouse://127.0.0.1:9000/runstream")
    assert (s.topic, s.dlq_topic, s.group) == ("runstream.events", "runstream.events.dlq", "runstream-ingest")
    assert s.port == 9465


def test_flags_win_over_the_environment() -> None:
    env = {"RUNSTREAM_KAFKA": "envk:1", "RUNSTREAM_CLICKHOUSE": "clickhouse://envh:9000/db", "RUNSTREAM_TOPIC": "et"}
    assert (settings_of([], env).kafka, settings_of([], env).topic) == ("envk:1", "et")
    s = settings_of(["--port", "9999", "--kafka", "k:1", "--clickhouse", "clickhouse://h:9000/db", "--group", "g",
                     "--topic", "t", "--dlq-topic", "t.dead", "--interval", "2", "--timeout", "1"], env)
    assert s == ExporterSettings(port=9999, kafka="k:1", clickhouse="clickhouse://h:9000/db", group="g", topic="t",
                                 dlq_topic="t.dead", interval_s=2.0, timeout_s=1.0, home=s.home)
    assert build_parser().parse_args(["exporter"]).handler is exporter_cmd.run


@pytest.mark.parametrize(
    "argv",
    [["--port", "70000"], ["--topic", "bad topic"], ["--topic", "a", "--dlq-topic", "a"], ["--interval", "0"],
     ["--timeout", "-1"], ["--clickhouse", "http://127.0.0.1:8123"], ["--kafka", " "]],
)
def test_bad_values_are_configuration_errors(argv: list[str]) -> None:
    with pytest.raises(ConfigurationError):
        settings_of(argv)


def test_the_exporter_needs_both_systems() -> None:
    with pytest.raises(ConfigurationError, match="both"):
        ExporterSettings(kafka="k:1")
