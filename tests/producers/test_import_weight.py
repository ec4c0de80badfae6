"""A training process that only logs loads the SDK and the contract, nothing heavier.

Reading back loads the store layer, ingest is never loaded by the SDK, and the
heavy engines (chDB, clickhouse-driver) load only where a store is opened.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LOGGING_SCRIPT = """
import json, sys
from producers import Experiment, Workspace
ws = Workspace(home=sys.argv[1])
with Experiment(ws, "weights").start_logging() as run:
    for step in range(100):
        run.log("loss", 1.0 / (step + 1))
    run.log_list("ranks", [1, 2, 3])
    run.tag("light")
ws.close()
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""

OURS = {"schemas", "store", "producers", "consumers", "runstream"}
HEAVY = {"chdb", "clickhouse_driver", "numpy", "prometheus_client", "kafka", "pandas", "matplotlib"}


def test_logging_loads_only_producers_and_schemas_of_ours_and_nothing_heavy(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", LOGGING_SCRIPT, str(tmp_path / "home")], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert loaded & OURS == {"producers", "schemas"}
    assert not loaded & HEAVY, loaded & HEAVY
    assert "fastavro" in loaded
