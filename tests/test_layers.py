"""The layering holds: import-linter's contracts (pyproject.toml) pass, and they catch a wrong import.

    schemas  <-  store  <-  producers | consumers  <-  runstream

Each package imports only the ones below it, producers and consumers never
import each other, and the modules of a package form no import cycle.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "store", "producers", "consumers", "runstream")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    # The checked tree first on the path, so grimp analyses that copy and not the installed one.
    env = {"PYTHONPATH": str(root), "PATH": str(LINT_IMPORTS.parent)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_every_contract() -> None:
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _copy_tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_an_sdk_module_importing_ingest_breaks_the_contracts(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    values = root / "producers" / "values.py"
    values.write_text(values.read_text() + "\nimport consumers.worker  # deliberately wrong\n")
    done = _lint(root)
    assert done.returncode != 0
    assert "The SDK never imports ingest (training processes stay light) BROKEN" in done.stdout
    assert "Layers: each package imports only the ones below it BROKEN" in done.stdout
    assert "producers.values -> consumers.worker" in done.stdout


def test_the_store_importing_the_sdk_breaks_the_contracts(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    reader = root / "store" / "reader.py"
    reader.write_text(reader.read_text() + "\nfrom producers.errors import ReadError  # deliberately wrong\n")
    done = _lint(root)
    assert done.returncode != 0
    assert "The store imports no layer above it BROKEN" in done.stdout


def test_a_cycle_between_two_modules_breaks_the_contracts(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    emitter = root / "producers" / "emitter.py"
    emitter.write_text(emitter.read_text() + "\nfrom producers import run as _run  # deliberately wrong: run imports emitter\n")
    done = _lint(root)
    assert done.returncode != 0
    assert "No import cycles between the modules of a package BROKEN" in done.stdout
