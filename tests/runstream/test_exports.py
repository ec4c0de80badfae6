"""Pin the public names of the command layer's modules."""

import importlib

import pytest

EXPECTED = {
    "runstream.cli": ["COMMANDS", "build_parser", "main"],
    "runstream.ingest_cmd": ["register", "build_settings"],
    "runstream.spool_cmd": ["register"],
    "runstream.exporter_cmd": ["register", "run", "build_settings", "start_exporter", "RunningExporter"],
    "runstream.jobs_cmd": ["register"],
    "runstream.sweep_cmd": ["register", "normalize_argv", "read_sweep_file", "sweep_mapping"],
    "runstream.testing": ["IngestProcess"],
    "runstream.server_cmd": ["register"],
    "runstream.server.app": ["create_app", "serve"],
    "runstream.server.reads": ["ServerReads"],
    "runstream.server.browser": ["CHROMIUM", "CHROMEDRIVER", "FLAGS", "Browser"],
    "runstream.server.ui_api": ["STATIC_DIR", "UiSettings", "Connect", "ui_routes"],
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_all_is_pinned_and_resolvable(module):
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(EXPECTED[module])
    for name in mod.__all__:
        assert hasattr(mod, name), name


def test_every_subcommand_module_is_registered():
    from runstream.cli import COMMANDS, build_parser

    assert {hook.partition(":")[0] for hook in COMMANDS.values()} == {
        "runstream.ingest_cmd", "runstream.spool_cmd", "runstream.exporter_cmd", "runstream.jobs_cmd",
        "runstream.server_cmd", "runstream.sweep_cmd"}
    parser = build_parser()
    for argv in (["ingest"], ["spool", "status"], ["exporter"], ["logs", "x"], ["submit", "-e", "e", "s.py"],
                 ["server", "--port", "5001"], ["sweep", "s.py"]):
        assert callable(parser.parse_args(argv).handler)
        assert callable(build_parser([argv[0]]).parse_args(argv).handler)


def test_a_named_subcommand_loads_only_its_own_module():
    import json
    import subprocess
    import sys

    code = ("import json, sys; from runstream.cli import build_parser, _named_command; "
            "build_parser(_named_command(['-q', 'submit', 'x.py'])); "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('consumers', 'prometheus_client'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
