"""The same MLflow client against ``runstream server`` and against ``mlflow server`` (sqlite).

Runner side: :func:`measure` starts MLflow's own tracking server with its
default sqlite store, ``runstream server`` on a fresh embedded home and the
null server (below), side by side in scratch folders, then runs one client
child. Child side: ``python -m bench.mlflow_server --uri NAME=URI ...
--batches N --trials T --history-points P`` logs, in every trial, ``N``
``log_batch`` calls of 1,000 metrics each (10 names x 100 steps, as a
training loop flushing every 100 steps would) to each server in turn, the
order rotating from trial to trial; then, per server, logs ``P`` points of one
metric to a fresh run and times ``get_metric_history`` (which pages through
25,000 points at a time). Taking turns inside each trial keeps the ratio
honest on a shared machine whose speed drifts from minute to minute.

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
WARM_UP_BATCHES = 8
"""Logged to each server before the clock starts: ``mlflow server`` runs 4 worker processes, each slow on its
first requests (after one warm-up batch, a first trial measured mlflow about 2x slower than the next two)."""


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


SERVERS = ("mlflow", "runstream", "client_alone")
"""The three tracking URIs one client child logs to, in turn, within every trial."""


def measure(scratch: Path, *, trials: int, batches: int, history_points: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """The three servers side by side, one client child logging to each in turn: trials and details.

    Every trial logs ``batches`` batches to each server, one server after the
    other (the order rotates from trial to trial), so a slow minute on this
    shared machine slows all three alike; each trial's ratio compares
    neighbours in time. ``details["bound"]`` is the client alone (the null
    server) over mlflow server's: the ratio a free server would get.
    """
    procs: dict[str, subprocess.Popen[bytes]] = {}
    uris: dict[str, str] = {}
    try:
        for name in SERVERS:
            folder = scratch / f"tracking-{name}"
            port = free_port()
            procs[name] = (start_mlflow_server(folder, port) if name == "mlflow"
                           else start_runstream_server(folder / "home", port) if name == "runstream"
                           else start_null_server(folder, port))
            uris[name] = f"http://127.0.0.1:{port}"
        results = measure_client(uris, batches=batches, trials=trials, history_points=history_points, cwd=scratch)
    finally:
        for proc in procs.values():
            stop_server(proc)
    ours, theirs, alone = (results[name]["points_per_s"] for name in ("runstream", "mlflow", "client_alone"))
    speedups = [o / t for o, t in zip(ours, theirs)]
    bounds = [a / t for a, t in zip(alone, theirs)]
    ms = {name: BATCH * 1000 / statistics.median(results[name]["points_per_s"]) for name in SERVERS}
    results["bound"] = {
        "client_alone_points_per_s": statistics.median(alone),
        "ratio_bound": statistics.median(bounds),
        "ratio_bound_trials": bounds,
        "ms_per_batch": ms,
        "runstream_server_ms_per_batch": ms["runstream"] - ms["client_alone"],
    }
    return ({"vs_mlflow_server_log_batch_speedup": speedups,
             "mlflow_get_history_100k_ms": results["runstream"]["history_ms"],
             "mlflow_server_get_history_100k_ms": results["mlflow"]["history_ms"]},
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


def measure_client(uris: dict[str, str], *, batches: int, trials: int, history_points: int,
                   cwd: Path) -> dict[str, Any]:
    """Run the client child against the named tracking ``uris`` (history on all but ``client_alone``)."""
    env = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "GIT_PYTHON_REFRESH": "quiet"}
    args = [f"--uri={name}={uri}" for name, uri in uris.items()]
    return run_child("bench.mlflow_server", [*args, "--batches", str(batches), "--trials", str(trials),
                                             "--history-points", str(history_points)], cwd=cwd, env=env, timeout=900)


def _client(args: argparse.Namespace) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    names = [f"metric_{i}" for i in range(NAMES)]
    per_batch = BATCH // NAMES

    def batch(index: int) -> list[Metric]:
        now = int(time.time() * 1000)
        first = index * per_batch
        return [Metric(name, 1.0 / (step + 1), now, step) for step in range(first, first + per_batch) for name in names]

    targets = dict(item.split("=", 1) for item in args.uri)
    clients: dict[str, tuple[Any, str, str]] = {}
    for name, uri in targets.items():
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("bench-mlflow")
        exp_id = exp.experiment_id if exp is not None else client.create_experiment("bench-mlflow")
        run_id = client.create_run(exp_id).info.run_id
        for index in range(WARM_UP_BATCHES):  # connections, run caches, every worker of mlflow server
            client.log_batch(run_id, metrics=batch(index))
        clients[name] = (client, exp_id, run_id)
    ready_then_wait()
    results: dict[str, dict[str, Any]] = {name: {"points_per_s": [], "history_ms": []} for name in targets}
    order = list(targets)
    index = WARM_UP_BATCHES
    for trial in range(args.trials):
        work = [batch(index + i) for i in range(args.batches)]
        index += args.batches
        for name in order[trial % len(order):] + order[:trial % len(order)]:  # the order rotates
            client, _, run_id = clients[name]
            t0 = time.perf_counter()
            for metrics in work:
                client.log_batch(run_id, metrics=metrics)
            results[name]["points_per_s"].append(args.batches * BATCH / (time.perf_counter() - t0))
    for name, (client, exp_id, run_id) in clients.items():
        client.set_terminated(run_id)
        if name != "client_alone" and args.history_points:
            results[name]["history_ms"] = _history(client, exp_id, args.history_points, args.trials)
    for result in results.values():
        result.update(batches=args.batches, history_points=args.history_points, mlflow_version=mlflow.__version__)
    return results


def _history(client: Any, exp_id: str, history_points: int, trials: int) -> list[float]:
    """Log ``history_points`` points of one metric to a fresh run, then time ``get_metric_history`` (ms)."""
    from mlflow.entities import Metric

    history_run = client.create_run(exp_id).info.run_id
    now = int(time.time() * 1000)
    for first in range(0, history_points, BATCH):
        client.log_batch(history_run, metrics=[Metric("loss", float(s), now + s, s)
                                               for s in range(first, min(first + BATCH, history_points))])
    history_ms = []
    for _ in range(trials):
        t0 = time.perf_counter()
        got = client.get_metric_history(history_run, "loss")
        history_ms.append((time.perf_counter() - t0) * 1000)
        if len(got) != history_points:
            raise RuntimeError(f"get_metric_history returned {len(got)} points, expected {history_points}")
    return history_ms


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
    parser.add_argument("--uri", action="append", default=[], metavar="NAME=URI",
                        help="a tracking server to log to (repeat: each trial logs to every one in turn)")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--history-points", type=int, default=100_000)
    args = parser.parse_args()
    if args.null_server:
        asyncio.run(_null_server(args.null_server))
        return
    if not args.uri:
        parser.error("at least one --uri NAME=URI is required")
    emit(_client(args))


if __name__ == "__main__":
    main()
