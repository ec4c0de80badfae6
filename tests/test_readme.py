"""The README's full example runs as written, on the embedded default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _full_example() -> str:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## A full example", 1)[1]
    return section.split("```python", 1)[1].split("```", 1)[0]


def test_the_full_example_runs_and_reads_back(tmp_path: Path) -> None:
    (tmp_path / "roc.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (tmp_path / "model.pt").write_bytes(b"weights" * 100)
    script = _full_example() + (
        "\nassert run.get_status() == 'Completed'"
        "\nassert run.get_metrics()['loss'][-1] == 0.1 and run.get_metrics()['best_model'] == 'resnet18'"
        "\nassert run.get_tags() == {'sweep': 's1', 'baseline': ''}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}  # the embedded default
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Completed" in done.stdout
    assert (tmp_path / ".runstream" / "chdb").is_dir()
