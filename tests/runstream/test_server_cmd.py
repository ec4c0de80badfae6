"""``runstream server``'s settings: passwords never on its command line; a reader and the SDK's whole settings."""

from __future__ import annotations

import pytest

from runstream import cli


def test_a_password_in_the_clickhouse_flag_is_refused_without_echoing_it(capsys: pytest.CaptureFixture[str]) -> None:
    args = cli.build_parser().parse_args(["server", "--clickhouse", "clickhouse://runstream_reader:hunter2@h:9000/db"])
    assert args.handler(args) == 2
    err = capsys.readouterr().err
    assert "RUNSTREAM_CLICKHOUSE_PASSWORD" in err and "hunter2" not in err
