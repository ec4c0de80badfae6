"""The UI shipped in runstream/server/static/ is exactly what `make ui` builds from ui/ (pinned packages)."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
UI = REPO / "ui"
SHIPPED = REPO / "runstream" / "server" / "static"


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_shipped_bundle_matches_a_fresh_build(tmp_path: Path) -> None:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.fail("node and npm are needed to rebuild the UI (Debian: apt-get install nodejs npm)")
    if not (UI / "node_modules" / ".package-lock.json").exists():
        # The exact versions of ui/package-lock.json, no scripts (esbuild's platform binary is its own package).
        subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=UI, check=True,
                       capture_output=True, timeout=600)
    out = tmp_path / "static"
    subprocess.run([node, "build.mjs", str(out)], cwd=UI, check=True, capture_output=True, timeout=300)
    assert _files(out) == _files(SHIPPED), "run `make ui` and commit runstream/server/static/"
    _match, mismatch, errors = filecmp.cmpfiles(out, SHIPPED, sorted(_files(out)), shallow=False)
    assert mismatch == [] and errors == [], f"stale built files {mismatch}: run `make ui` and commit them"


def test_the_page_loads_nothing_from_elsewhere() -> None:
    page = (SHIPPED / "index.html").read_text(encoding="utf-8")
    assert "ui/assets/app.js" in page and "ui/assets/app.css" in page
    for built in [SHIPPED / "index.html", *sorted((SHIPPED / "assets").glob("*.css"))]:
        text = built.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "//fonts." not in text, built
