"""runstream.jobs_cmd: `runstream submit`'s options around the script's own arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from runstream.cli import build_parser
from runstream.jobs_cmd import _split_script_args


def parse(*argv: str):
    args = build_parser().parse_args(["submit", *argv])
    return args, _split_script_args(args)


def test_our_options_may_come_before_or_after_the_script() -> None:
    args, script_args = parse("-e", "mnist", "train.py", "--lr", "0.1", "--tag", "a=b", "data.csv",
                              "--show-output", "--tag", "flag", "--env", "SEED=1", "--epochs=3")
    assert args.experiment == "mnist" and args.script == "train.py" and args.show_output
    assert args.tag == [("a", "b"), ("flag", None)] and args.env == [("SEED", "1")]
    assert script_args == ["--lr", "0.1", "data.csv", "--epochs=3"]


def test_after_a_double_dash_everything_is_the_scripts() -> None:
    args, script_args = parse("train.py", "--experiment", "x", "--", "--tag", "mine", "--experiment", "y")
    assert args.experiment == "x" and script_args == ["--tag", "mine", "--experiment", "y"]
    assert args.tag is None and not args.show_output


def test_options_are_not_abbreviated_into_ours() -> None:
    args, script_args = parse("train.py", "--exp", "1", "--source-directory", "src", "--python", "/usr/bin/python3")
    assert script_args == ["--exp", "1"] and args.source_directory == Path("src")
    assert args.python == "/usr/bin/python3"


def test_bad_pairs_are_refused() -> None:
    with pytest.raises(SystemExit):
        parse("--env", "NOVALUE", "train.py")
