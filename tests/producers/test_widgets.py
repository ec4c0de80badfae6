"""The notebook widget: an iframe of `runstream server` when it answers, else self-contained HTML."""

from __future__ import annotations

import http.server
import io
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU\x00\x00"
       b"\x00\nIDATx\x9cc\xf8\x0f\x00\x01\x01\x01\x00\x18\xdd\x8d\xb0\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture
def health_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_iframe_when_the_server_answers(health_server: str, tmp_path: Path) -> None:
    from producers import Experiment, Workspace
    from producers.widgets import RunDetails

    with Workspace(home=str(tmp_path)) as ws:
        run = Experiment(ws, "widget").start_logging()
        widget = RunDetails(run, server=health_server)
        assert widget.server_answers()
        page = widget._repr_html_()
        assert page.startswith("<iframe") and f'{health_server}/#/run/{run.id}' in page
        assert not RunDetails(run, server="http://127.0.0.1:9").server_answers()
        run.complete()


def test_self_contained_html_without_a_server(tmp_path: Path) -> None:
    # In a child process: the embedded read starts the home's owner, which must not outlive the test's home.
    script = textwrap.dedent(f"""
        import io
        from producers import Experiment, Workspace
        from producers.widgets import RunDetails
        with Workspace(home={str(tmp_path)!r}) as ws:
            with Experiment(ws, "widget").start_logging(display_name="w<b>", tags={{"team": "x"}}) as run:
                for step in range(500):
                    run.log("loss", 1.0 / (step + 1))
                run.log("best", "resnet")
                run.log_image("sample", path={str(tmp_path / 'a.png')!r})
            page = RunDetails(run, server="http://127.0.0.1:9").get_html()
        assert "<polyline" in page and "loss" in page and "resnet" in page and "Completed" in page, page
        assert "w&lt;b&gt;" in page and "<b>" not in page
        assert "data:image/png;base64," in page
        assert "http" not in page.replace("http://127.0.0.1:9", "")
        assert "<script" not in page
        print("ok")
    """)
    (tmp_path / "a.png").write_bytes(PNG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
