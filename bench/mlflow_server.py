"""The same MLflow client against ``runstream server`` and against ``mlflow server`` (sqlite).

Runner side: :func:`start_mlflow_server` starts MLflow's own tracking server
with its default sqlite store in a scratch folder; :func:`measure_client`
runs the client child against a tracking URI. Child side: ``python -m
bench.mlflow_server --uri URI --batches N --trials T --history-points P``
logs ``N`` ``log_batch`` calls of 1,000 metrics each (10 names x 100 steps,
as a training loop flushing every 100 steps would) per trial, then logs
``P`` points of one metric to a fresh run and times ``get_metric_history``
(which pages through 25,000 points at a time).

Keys: ``vs_mlflow_server_log_batch_speedup`` (runstream points/s over
mlflow's), ``mlflow_get_history_100k_ms`` for both servers.

What bounds the ratio: the MLflow client encodes each 1,000-metric batch
itself (protobuf -> dict -> indented JSON, tens of ms) before the server sees a
byte, one call after the other. So the same child also logs the same batches to
a *null server* (``python -m bench.mlflow_server --null-server PORT``: reads
each request, answers ``{}``-shaped JSON, stores nothing): the client alone.
Its points/s over mlflow server's is the highest ratio any server could reach
in that run; ``details`` report it next to the measured ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from .child import REPO, emit, ready_then_wait, run_child

__all__ = ["measure", "measure_client", "start_mlflow_server", "start_runstream_server", "start_null_server",
           "stop_server", "free_port"]

BATCH = 1000
NAMES = 10


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_health(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        _poll_health(url, proc, timeout)
    except BaseException:
        stop_server(proc)  # never leave a half-started server behind
        raise


def _poll_health(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"server did not answer {url} within {timeout:.0f} s")


def start_mlflow_server(folder: Path, port: int, *, timeout: float = 300.0) -> subprocess.Popen[bytes]:
    """``mlflow server`` with its sqlite store and local artifacts under ``folder`` (a fresh one)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    mlflow = Path(sys.executable).with_name("mlflow")
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts")],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    _wait_health(f"http://127.0.0.1:{port}/health", proc, timeout)
    return proc


def start_runstream_server(home: Path, port: int, *, timeout: float = 300.0) -> subprocess.Popen[bytes]:
    """``runstream server`` on the embedded default: it owns ``home`` (a fresh one) like ``mlflow server`` its sqlite."""
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env.update(RUNSTREAM_HOME=str(home), PYTHONPATH=str(REPO))
    log = open(home.parent / f"{home.name}-server.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "runstream", "-q", "server", "--port", str(port)], cwd=home.parent,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    log.close()
    _wait_health(f"http://127.0.0.1:{port}/health", proc, timeout)
    return proc


def start_null_server(folder: Path, port: int, *, timeout: float = 60.0) -> subprocess.Popen[bytes]:
    """The null server (see the module's docstring): the client's own cost, with a server that does nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / "null-server.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "bench.mlflow_server", "--null-server", str(port)], cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    log.close()
    _wait_health(f"http://127.0.0.1:{port}/health", proc, timeout)
    return proc


def measure(scratch: Path, *, trials: int, batches: int, history_points: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Both servers, one after the other, the same client child and work: trials and details.

    Then the client alone (the null server, no history): ``details["bound"]``
    is its points/s over mlflow server's, the ratio a free server would get.
    """
    results: dict[str, dict[str, Any]] = {}
    for name in ("mlflow", "runstream", "client_alone"):
        folder = scratch / f"tracking-{name}"
        port = free_port()
        proc = (start_mlflow_server(folder, port) if name == "mlflow"
                else start_runstream_server(folder / "home", port) if name == "runstream"
                else start_null_server(folder, port))
        try:
            results[name] = measure_client(f"http://127.0.0.1:{port}", batches=batches, trials=trials,
                                           history_points=history_points if name != "client_alone" else 0,
                                           cwd=scratch)
        finally:
            stop_server(proc)
    ours, theirs, alone = results["runstream"], results["mlflow"], results["client_alone"]
    theirs_median = statistics.median(theirs["points_per_s"])
    speedups = [r / theirs_median for r in ours["points_per_s"]]
    alone_median = statistics.median(alone["points_per_s"])
    ours_median = statistics.median(ours["points_per_s"])
    results["bound"] = {
        "client_alone_points_per_s": alone_median,
        "ratio_bound": alone_median / theirs_median,
        "ms_per_batch": {"client_alone": BATCH * 1000 / alone_median, "runstream": BATCH * 1000 / ours_median,
                         "mlflow": BATCH * 1000 / theirs_median},
        "runstream_server_ms_per_batch": BATCH * 1000 / ours_median - BATCH * 1000 / alone_median,
    }
    return ({"vs_mlflow_server_log_batch_speedup": speedups,
             "mlflow_get_history_100k_ms": ours["history_ms"],
             "mlflow_server_get_history_100k_ms": theirs["history_ms"]},
            results)


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM the server's process group and wait."""
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def measure_client(uri: str, *, batches: int, trials: int, history_points: int, cwd: Path) -> dict[str, Any]:
    """Run the client child against ``uri``."""
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
           "GIT_PYTHON_REFRESH": "quiet"}
    return run_child("bench.mlflow_server", ["--uri", uri, "--batches", str(batches), "--trials", str(trials),
                                             "--history-points", str(history_points)], cwd=cwd, env=env, timeout=600)


def _client(args: argparse.Namespace) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(args.uri)
    exp = client.get_experiment_by_name("bench-mlflow")
    exp_id = exp.experiment_id if exp is not None else client.create_experiment("bench-mlflow")
    run_id = client.create_run(exp_id).info.run_id
    names = [f"metric_{i}" for i in range(NAMES)]
    per_batch = BATCH // NAMES

    def batch(index: int) -> list[Metric]:
        now = int(time.time() * 1000)
        first = index * per_batch
        return [Metric(name, 1.0 / (step + 1), now, step) for step in range(first, first + per_batch) for name in names]

    client.log_batch(run_id, metrics=batch(0))  # warm-up: connection, run caches
    ready_then_wait()
    points_per_s = []
    index = 1
    for _ in range(args.trials):
        work = [batch(index + i) for i in range(args.batches)]
        index += args.batches
        t0 = time.perf_counter()
        for metrics in work:
            client.log_batch(run_id, metrics=metrics)
        points_per_s.append(args.batches * BATCH / (time.perf_counter() - t0))
    client.set_terminated(run_id)

    history_run = client.create_run(exp_id).info.run_id
    now = int(time.time() * 1000)
    for first in range(0, args.history_points, BATCH):
        client.log_batch(history_run, metrics=[Metric("loss", float(s), now + s, s)
                                               for s in range(first, min(first + BATCH, args.history_points))])
    history_ms = []
    for _ in range(args.trials):
        t0 = time.perf_counter()
        got = client.get_metric_history(history_run, "loss")
        history_ms.append((time.perf_counter() - t0) * 1000)
        if len(got) != args.history_points:
            raise RuntimeError(f"get_metric_history returned {len(got)} points, expected {args.history_points}")
    return {"points_per_s": points_per_s, "history_ms": history_ms, "batches": args.batches,
            "history_points": args.history_points, "mlflow_version": mlflow.__version__}


_NULL_ANSWERS = {
    b"/api/2.0/mlflow/experiments/get-by-name": b'{"experiment":{"experiment_id":"1","name":"bench-mlflow",'
                                                b'"lifecycle_stage":"active"}}',
    b"/api/2.0/mlflow/runs/create": b'{"run":{"info":{"run_id":"null","run_uuid":"null","experiment_id":"1",'
                                    b'"status":"RUNNING","start_time":1,"lifecycle_stage":"active"},"data":{}}}',
    b"/api/2.0/mlflow/runs/update": b'{"run_info":{"run_id":"null","run_uuid":"null","experiment_id":"1",'
                                    b'"status":"FINISHED","start_time":1,"lifecycle_stage":"active"}}',
    b"/health": b"OK",
}


async def _null_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            path = head.split(b" ", 2)[1].split(b"?", 1)[0]
            body = _NULL_ANSWERS.get(path, b"{}")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _null_server(port: int) -> None:
    server = await asyncio.start_server(_null_connection, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mlflow_server")
    parser.add_argument("--null-server", type=int, metavar="PORT", help="serve the null server on PORT instead")
    parser.add_argument("--uri")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--history-points", type=int, default=100_000)
    args = parser.parse_args()
    if args.null_server:
        asyncio.run(_null_server(args.null_server))
        return
    if not args.uri:
        parser.error("--uri is required")
    emit(_client(args))


if __name__ == "__main__":
    main()
