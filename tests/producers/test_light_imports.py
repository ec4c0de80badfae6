"""A training process that only logs imports nothing heavier than fastavro and kafka-python (issue 17).

Ingest reads packed batches with numpy; the SDK writes them with the standard
library's ``array``. Checked in a fresh interpreter, through the whole logging
path (workspace, run, scalar points, a list, encode on the emitter thread).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = ("numpy", "pandas", "chdb", "clickhouse_driver", "consumers")
IN_STORE_TOO = ("numpy", "pandas", "chdb", "clickhouse_driver")


def test_logging_imports_no_numpy_nor_ingest(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from producers import Experiment, Workspace
        from producers.testing import InMemoryTransport

        transport = InMemoryTransport()
        ws = Workspace(home={str(tmp_path)!r}, transport=transport, install_signal_handlers=False)
        run = Experiment(ws, "e").start_logging()
        for i in range(1000):
            run.log("loss", i / 1000)
        run.log("label", "cat")
        run.log_list("accs", [0.5, 0.75])
        assert ws.flush(30) and transport.messages
        run.complete()
        ws.close()
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
        print(",".join(heavy))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"the logging path imported {out.stdout.strip()}"


def test_importing_the_store_loads_no_numpy_nor_engine() -> None:
    # Readers go through store; its insert path (store.blocks) loads numpy only when it inserts.
    script = ("import sys, store, producers; "
              f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {IN_STORE_TOO!r})))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"import store loaded {out.stdout.strip()}"
