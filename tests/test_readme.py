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


def _sweeps_examples() -> tuple[str, str]:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Sweeps", 1)[1].split("\n## ", 1)[0]
    blocks = [part.split("```", 1)[0] for part in section.split("```python")[1:]]
    return blocks[0], blocks[1]


def test_the_sweeps_example_runs_end_to_end(tmp_path: Path) -> None:
    train, driver = _sweeps_examples()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(train, encoding="utf-8")
    script = driver + (
        "\nimport json"
        "\nfrom producers import Run"
        "\nassert hd_run.get_status() == 'Completed'"
        "\nassert json.loads(best.get_properties()['hyperparameters']) == {'--alpha': 0.1}"
        "\nranked = hd_run.get_children_sorted_by_primary_metric(top=5)"
        "\nassert [r['hyperparameters']['--alpha'] for r in ranked][:2] == [0.1, 0.0]"
        "\nstatus = {r['hyperparameters']['--alpha']: r['status'] for r in ranked}"
        "\nassert status[0.1] == status[0.0] == 'Completed' and status[1.0] == 'Canceled', status"
        "\nstopped = [c for c in hd_run.get_children() if c.get_status() == 'Canceled']"
        "\nassert all(c.get_details()['error']['message'].startswith('BanditPolicy at interval') for c in stopped)"
        "\nassert sorted(Run(hd_run.experiment, hd_run.id).get_metrics()['alpha_tried']) == [0.0, 0.1, 0.3, 1.0]"
        "\nprint('SWEEP OK')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}  # the embedded default
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SWEEP OK" in done.stdout
    assert "trial  run" in done.stdout  # the table
