"""The real ``mlflow`` client against a real ``runstream server`` (no mocks of either), embedded and on the stack.

Embedded: the server owns its home (ingests the spool into chDB). Stack: the
server writes to Kafka and reads ClickHouse, a ``runstream ingest`` worker
runs beside it. The same tests run on both: MLflow's fluent API and
``MlflowClient`` reads, runstream's own API reading what MLflow wrote (and
the other way round), Lightning's ``MLFlowLogger`` call sequence with its run
id preset to a runstream run, and a submitted script using plain ``mlflow``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from consumers.testing import create_topic
from runstream.testing import IngestProcess
from schemas.settings import WorkspaceSettings
from producers import Experiment, Run, ScriptRunConfig, Workspace
from schemas.mlflow_ids import mlflow_experiment_id

from mlflow_clients import LightningMLFlowLogger, train_and_test

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import mlflow  # noqa: E402  (after the environment above: the client reads it at import)
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    uri: str
    env: dict[str, str]
    home: Path
    proc: subprocess.Popen[str]

    def workspace(self) -> Workspace:
        # The server's own settings only: `make test` exports the stack's RUNSTREAM_* for every test.
        settings = WorkspaceSettings.resolve(
            {"home": self.home, "kafka": self.env.get("RUNSTREAM_KAFKA"),
             "clickhouse": self.env.get("RUNSTREAM_CLICKHOUSE"), "topic": self.env.get("RUNSTREAM_TOPIC"),
             "server": self.uri, "install_signal_handlers": False}, env={})
        return Workspace(settings=settings)


def _start_server(base: Path, env: dict[str, str]) -> Server:
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    home = Path(env["RUNSTREAM_HOME"])
    full = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    full.update(env, PYTHONPATH=str(REPO), RUNSTREAM_SERVER=uri)
    with open(base / "server.log", "w") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen([sys.executable, "-m", "runstream", "server", "--port", str(port)], env=full,
                                text=True, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, (base / "server.log").read_text()
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                if resp.read() == b"OK":
                    return Server(uri, {**env, "RUNSTREAM_SERVER": uri}, home, proc)
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("runstream server did not answer /health:\n" + (base / "server.log").read_text())


def _stop_server(server: Server, base: Path) -> None:
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(60)
    assert code == 0, (base / "server.log").read_text()


@pytest.fixture(scope="module", params=["embedded", "stack"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp(f"mlflow-{request.param}")
    home = base / "home"
    home.mkdir()
    (home / "limits.json").write_text(json.dumps({"max_properties": 250}))  # Lightning logs 131 params below
    if request.param == "embedded":
        srv = _start_server(base, {"RUNSTREAM_HOME": str(home)})
        try:
            yield srv
            _stop_server(srv, base)
        finally:
            srv.proc.kill()
        return
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    name = f"rs_mlflow_{uuid.uuid4().hex[:12]}"
    url = request.getfixturevalue("clickhouse_url").rsplit("/", 1)[0] + "/" + name
    create_topic(bootstrap, name, 4)
    worker = IngestProcess(["--kafka", bootstrap, "--clickhouse", url, "--topic", name, "--group", name,
                            "--dlq-topic", name + ".dlq", "--flush-interval", "0.1", "--home", str(base / "ingest"),
                            "--limit", "max_properties=250"], base / "worker.log").start()
    srv = _start_server(base, {"RUNSTREAM_HOME": str(home), "RUNSTREAM_KAFKA": bootstrap,
                               "RUNSTREAM_CLICKHOUSE": url, "RUNSTREAM_TOPIC": name})
    try:
        yield srv
        _stop_server(srv, base)
        assert worker.stop() == 0, worker.output()
    finally:
        srv.proc.kill()
        worker.kill()
        from clickhouse_driver import Client

        client = Client.from_url(url.rsplit("/", 1)[0] + "/default")
        client.execute(f"DROP DATABASE IF EXISTS `{name}`")
        client.disconnect()


@pytest.fixture
def client(server: Server) -> MlflowClient:
    mlflow.set_tracking_uri(server.uri)
    return MlflowClient(server.uri)


def _wait_for(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_fluent_api_and_client_reads(server: Server, client: MlflowClient, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    experiment = f"fluent-{uuid.uuid4().hex[:6]}"
    mlflow.set_experiment(experiment)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("a,b\n1,2\n")
    (tmp_path / "empty.txt").write_bytes(b"")
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"batch": 32, "opt": "adam"})
        mlflow.log_metric("loss", 0.5, step=0)
        mlflow.log_metric("loss", math.nan, step=1)
        mlflow.log_metrics({"acc": 0.9, "inf": math.inf}, step=2)
        mlflow.set_tag("team", "vision")
        mlflow.set_tags({"stage": "dev"})
        mlflow.log_dict({"k": [1, 2]}, "conf/params.json")
        mlflow.log_text("hello", "notes/epoch=1-step=10+v~1.txt")
        mlflow.log_artifact(str(tmp_path / "empty.txt"))
        mlflow.log_artifacts(str(tmp_path / "data"), "data")
        fig = plt.figure()
        plt.plot([1, 2, 3])
        mlflow.log_figure(fig, "plots/curve.png")
        with pytest.raises(MlflowException, match="Changing param values is not allowed"):
            mlflow.log_param("lr", 0.2)
    run_id = run.info.run_id
    exp_id = run.info.experiment_id
    assert exp_id == mlflow_experiment_id(experiment)

    got = client.get_run(run_id)  # at once: read-your-writes, whatever the ingest lag
    assert got.info.status == "FINISHED" and got.info.run_name == "first"
    assert got.data.params == {"lr": "0.1", "batch": "32", "opt": "adam"}
    assert got.data.metrics["acc"] == 0.9 and got.data.metrics["inf"] == math.inf and math.isnan(got.data.metrics["loss"])
    assert got.data.tags["team"] == "vision" and got.data.tags["mlflow.runName"] == "first"
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [0, 1] and history[0].value == 0.5 and math.isnan(history[1].value)

    found = client.search_runs([exp_id], "metrics.acc > 0.5 and params.opt = 'adam'", order_by=["metrics.acc DESC"])
    assert [r.info.run_id for r in found] == [run_id]
    assert client.search_runs([exp_id], "params.opt = 'sgd'") == []
    assert experiment in [e.name for e in client.search_experiments()]
    top = {(f.path, f.is_dir) for f in client.list_artifacts(run_id)}
    assert {("conf", True), ("notes", True), ("data", True), ("plots", True), ("empty.txt", False)} <= top
    assert [f.path for f in client.list_artifacts(run_id, "notes")] == ["notes/epoch=1-step=10+v~1.txt"]
    local = client.download_artifacts(run_id, "notes", str(tmp_path / "dl"))
    assert (Path(local) / "epoch=1-step=10+v~1.txt").read_text() == "hello"
    assert json.loads(Path(client.download_artifacts(run_id, "conf/params.json", str(tmp_path / "dl2"))).read_text()) == {
        "k": [1, 2]}
    assert mlflow.search_runs(experiment_ids=[exp_id]).shape[0] == 1

    # Once ingested, the same run reads the same through runstream's own API.
    ws = server.workspace()
    try:
        rs_run = Run(Experiment(ws, experiment), run_id)

        def ingested() -> None:
            assert rs_run.get_status() == "Completed"
            assert rs_run.get_properties() == {"lr": "0.1", "batch": "32", "opt": "adam"}
            assert rs_run.get_metrics()["acc"] == 0.9
            assert "notes/epoch=1-step=10+v~1.txt" in rs_run.get_file_names()

        _wait_for(ingested)
        assert client.get_run(run_id).info.status == "FINISHED"
    finally:
        ws.close(10)


def test_batch_retries_limits_and_finished_runs(server: Server, client: MlflowClient) -> None:
    from mlflow.entities import Metric, Param

    run_id = client.create_run("0").info.run_id
    batch = [Metric("m", float(i), 1000 + i, i) for i in range(1000)]
    client.log_batch(run_id, metrics=batch)
    client.log_batch(run_id, metrics=batch)  # what a retried POST looks like: kept once
    client.set_terminated(run_id, "FINISHED")
    client.log_batch(run_id, metrics=[Metric("after", 1.0, 5000, 0)])  # FINISHED runs take metrics and tags
    client.set_tag(run_id, "late", "yes")
    assert len(client.get_metric_history(run_id, "m")) == 1000
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["after"] == 1.0 and run.data.tags["late"] == "yes"
    # The client splits big batches itself; a raw request over MLflow's limit gets MLflow's error.
    body = json.dumps({"run_id": run_id, "metrics": [{"key": "m", "value": 1, "timestamp": 1, "step": i}
                                                     for i in range(1001)]}).encode()
    request = urllib.request.Request(f"{server.uri}/api/2.0/mlflow/runs/log-batch", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["error_code"] == "INVALID_PARAMETER_VALUE"
    refused.value.close()
    with pytest.raises(MlflowException, match="max_metric_names"):
        client.log_batch(run_id, metrics=[Metric(f"n{i}", 0.0, 1, 0) for i in range(60)])
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        client.get_run("no_such_run")
    # runstream's own limits answer as MLflow errors naming the limit (params are properties: 250 here).
    with pytest.raises(MlflowException, match="max_properties"):
        client.log_batch(run_id, params=[Param(f"p{i}", "v") for i in range(251)])


def test_lightning_mlflow_logger_with_a_preset_run_id(server: Server, client: MlflowClient) -> None:
    """The Azure ML page's pattern: a runstream run, its workspace's tracking URI, MLFlowLogger on its id."""
    ws = server.workspace()
    try:
        experiment = Experiment(ws, f"lightning-{uuid.uuid4().hex[:6]}")
        run = experiment.start_logging(display_name="trainer")
        assert ws.get_mlflow_tracking_uri() == server.uri
        logger = LightningMLFlowLogger(experiment_name=experiment.name, tracking_uri=ws.get_mlflow_tracking_uri())
        logger._run_id = run.id
        hparams = {"model": {f"layer_{i}": i for i in range(130)}, "note": "x" * 300}
        train_and_test(logger, hparams=hparams, epochs=2, steps_per_epoch=5)
        got = client.get_run(run.id)
        assert got.info.experiment_id == mlflow_experiment_id(experiment.name)
        assert len(got.data.params) == 131 and got.data.params["note"] == "x" * 250
        assert got.data.params["model/layer_7"] == "7"
        assert got.info.status == "FINISHED" and got.data.metrics["test_acc"] == 0.93
        assert set(got.data.metrics) == {"train_loss", "epoch", "lr-Adam", "val_loss", "val_acc1", "test_acc"}
        assert [m.step for m in client.get_metric_history(run.id, "train_loss")] == list(range(10))
        run.complete()  # the Azure-style Run object still ends its run: consistent in both views

        def ingested() -> None:
            assert run.get_status() == "Completed"
            assert run.get_metrics()["test_acc"] == 0.93
            assert run.get_properties()["model/layer_129"] == "129"

        _wait_for(ingested)
        assert client.get_run(run.id).info.status == "FINISHED"
    finally:
        ws.close(10)


def test_a_submitted_script_logs_with_plain_mlflow(server: Server, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent("""
        import os
        import mlflow
        job_run = os.environ["MLFLOW_RUN_ID"]  # mlflow.start_run() takes it out of the environment
        assert os.environ["MLFLOW_TRACKING_URI"].startswith("http://")
        with mlflow.start_run() as run:
            assert run.info.run_id == job_run
            mlflow.log_param("seed", 7)
            for step in range(5):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.log_text("done", "outputs/status.txt")
    """))
    ws = server.workspace()
    try:
        experiment = Experiment(ws, f"submitted-{uuid.uuid4().hex[:6]}")
        run = experiment.submit(ScriptRunConfig(source_directory=str(src), script="train.py",
                                                environment={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                                                             "MLFLOW_DISABLE_TELEMETRY": "true"}))
        run.wait_for_completion()

        def ingested() -> None:
            assert run.get_status() == "Completed"
            assert run.get_metrics()["loss"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
            assert run.get_properties()["seed"] == "7"
            assert "outputs/status.txt" in run.get_file_names()

        _wait_for(ingested)
    finally:
        ws.close(10)
