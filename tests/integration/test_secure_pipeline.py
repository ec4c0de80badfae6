"""The whole path over TLS + SASL: the SDK logs as ``runstream-producer`` through Kafka's SASL_SSL
listener, ``runstream ingest`` reads as ``runstream-ingest`` and writes ClickHouse over TLS as
``runstream_writer`` (RUNSTREAM_CLICKHOUSE_WRITER, beside the reader's RUNSTREAM_CLICKHOUSE), the SDK
reads back as ``runstream_reader`` over TLS, ``runstream spool replay`` sends an outbox as the producer,
``runstream server`` takes MLflow writes as the producer and reads as the reader, and ``runstream
exporter`` watches as ``runstream-exporter``.
Then every log of the run is searched for every password. A wrong password or an untrusted
certificate stops ingest at once with one clear message.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import schemas
from consumers.testing import wait_until
from producers import Experiment, Run, Workspace
from producers.errors import RunNotFound
from runstream.testing import IngestProcess
from schemas import RunStarted, RunStatusChanged, ScalarBatch
from schemas.kafka_login import AuthenticationFailed, CertificateUntrusted
from schemas.secrets import Secret
from schemas.settings import WorkspaceSettings
from schemas.spool import SpoolWriter
from stack import ClickHouseInstance, KafkaInstance, free_ports

PRODUCER, INGEST, EXPORTER = "runstream-producer", "runstream-ingest", "runstream-exporter"


def _kafka_env(kafka: KafkaInstance, principal: str) -> dict[str, str]:
    return {"RUNSTREAM_KAFKA": kafka.sasl_bootstrap, "RUNSTREAM_KAFKA_SECURITY": "SASL_SSL",
            "RUNSTREAM_KAFKA_CA_FILE": str(kafka.ca_file), "RUNSTREAM_KAFKA_USER": principal,
            "RUNSTREAM_KAFKA_PASSWORD_FILE": str(kafka.password_file(principal))}


def _clickhouse_env(clickhouse: ClickHouseInstance, user: str) -> dict[str, str]:
    return {"RUNSTREAM_CLICKHOUSE": clickhouse.secure_url(user),
            "RUNSTREAM_CLICKHOUSE_PASSWORD_FILE": str(clickhouse.password_file(user))}


def _writer_env(clickhouse: ClickHouseInstance) -> dict[str, str]:
    """A deployment's whole ClickHouse environment: every reader uses the reader, writers the writer."""
    return {**_clickhouse_env(clickhouse, "runstream_reader"),
            "RUNSTREAM_CLICKHOUSE_WRITER": clickhouse.secure_url("runstream_writer"),
            "RUNSTREAM_CLICKHOUSE_WRITER_PASSWORD_FILE": str(clickhouse.password_file("runstream_writer"))}


@pytest.fixture
def names(secure_kafka: KafkaInstance, unique_name: str) -> dict[str, str]:
    """An events topic, its dead-letter topic and a group, with the principals' ACLs on them."""
    named = {"topic": unique_name, "dlq": f"{unique_name}.dlq", "group": f"{unique_name}-ingest"}
    secure_kafka.grant(events_topic=named["topic"], dlq_topic=named["dlq"], group=named["group"])
    return named


def _ingest(kafka: KafkaInstance, clickhouse: ClickHouseInstance, names: dict[str, str], log: Path,
            **overrides: str) -> IngestProcess:
    env = {**_kafka_env(kafka, INGEST), **_writer_env(clickhouse), **overrides}
    return IngestProcess(["--topic", names["topic"], "--dlq-topic", names["dlq"], "--group", names["group"],
                          "--home", str(log.parent / "ingest-home")], log, env=env)


def _sdk_settings(kafka: KafkaInstance, clickhouse: ClickHouseInstance, topic: str, home: Path,
                  **overrides: Any) -> WorkspaceSettings:
    values: dict[str, Any] = {
        "kafka": kafka.sasl_bootstrap, "kafka_security": "SASL_SSL", "kafka_ca_file": kafka.ca_file,
        "kafka_user": PRODUCER, "kafka_password": Secret(kafka.password_file(PRODUCER).read_text().strip()),
        "clickhouse": clickhouse.secure_url("runstream_reader"),
        "clickhouse_password": Secret(clickhouse.password("runstream_reader")),
        "topic": topic, "home": home, "install_signal_handlers": False, **overrides}
    return WorkspaceSettings.resolve(values, env={})


@pytest.fixture
def sdk_log(tmp_path: Path) -> Iterator[Path]:
    """Everything the test process logs (the SDK, kafka-python, clickhouse-driver), at DEBUG, to a file."""
    path = tmp_path / "sdk.log"
    handler = logging.FileHandler(path)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def _outbox_segment(home: Path, run_id: str, experiment: str) -> None:
    """What a producer that died during an outage leaves: a sealed outbox segment of one run."""
    writer = SpoolWriter(home / "outbox", "w_replayed", segment_bytes=1 << 20)
    env = lambda seq: dict(writer_id="w_replayed", seq=seq, run_id=run_id, experiment=experiment,  # noqa: E731
                           created_ms=int(time.time() * 1000))
    writer.append(run_id.encode(), schemas.encode(RunStarted(**env(1))))
    writer.append(run_id.encode(), schemas.encode(ScalarBatch(
        **env(2), names=["acc"], descriptions=[""], name_idx=[0, 0, 0], steps=[0, 1, 2], times_ms=[0, 1, 2],
        values=[0.5, 0.75, 0.875])))
    writer.append(run_id.encode(), schemas.encode(RunStatusChanged(**env(3), status="Completed")))
    writer.close()


def test_log_ingest_and_read_back_over_tls_and_sasl(secure_kafka: KafkaInstance,
                                                     secure_clickhouse: ClickHouseInstance,
                                                     names: dict[str, str], tmp_path: Path, sdk_log: Path) -> None:
    ingest = _ingest(secure_kafka, secure_clickhouse, names, tmp_path / "ingest.log").start()
    exporter_log, server_log = tmp_path / "exporter.log", tmp_path / "server.log"
    exporter = server = server_code = None
    try:
        settings = _sdk_settings(secure_kafka, secure_clickhouse, names["topic"], tmp_path / "sdk-home")
        with Workspace(settings=settings) as ws:
            experiment = Experiment(ws, "secure")
            with experiment.start_logging(display_name="tls") as run:
                for step in range(100):
                    run.log("loss", 1.0 / (step + 1))
                run.tag("secure")
            back = Run(experiment, run.id)
            metrics = back.get_metrics()  # waits for ingest, then reads as runstream_reader over TLS
            assert len(metrics["loss"]) == 100 and metrics["loss"][0] == 1.0
            assert back.get_status() == "Completed"

        # runstream spool replay, as the producer: an outbox left by a dead process reaches ClickHouse.
        replay_home = tmp_path / "replay-home"
        _outbox_segment(replay_home, "secure_replayed_1", "secure")
        replay = subprocess.run(
            [sys.executable, "-m", "runstream", "spool", "replay", "--home", str(replay_home), "--topic", names["topic"]],
            env={**_isolated_env(), **_kafka_env(secure_kafka, PRODUCER)}, capture_output=True, text=True, timeout=120)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        with Workspace(settings=settings) as ws:
            replayed = _completed_run(Experiment(ws, "secure"), "secure_replayed_1")
            assert replayed.get_metrics()["acc"] == [0.5, 0.75, 0.875]

        # runstream exporter, as the exporter principal and the reader: both sources up, lag known.
        port = free_ports(1)[0]
        exporter_out = exporter_log.open("wb")
        exporter = subprocess.Popen(
            [sys.executable, "-m", "runstream", "exporter", "--port", str(port), "--host", "127.0.0.1",
             "--topic", names["topic"], "--dlq-topic", names["dlq"], "--group", names["group"], "--interval", "1"],
            env={**_isolated_env(), **_kafka_env(secure_kafka, EXPORTER),
                 **_clickhouse_env(secure_clickhouse, "runstream_reader")},
            stdout=exporter_out, stderr=subprocess.STDOUT)
        metrics_text = wait_until(lambda: _scrape_when_up(port), timeout_s=60, what="the exporter's sources up")
        assert "runstream_consumer_lag{" in metrics_text

        # runstream server: MLflow writes go to Kafka as the producer, reads come from ClickHouse as the reader.
        server_port = free_ports(1)[0]
        server_out = server_log.open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "runstream", "server", "--port", str(server_port), "--home",
             str(tmp_path / "server-home"), "--topic", names["topic"]],
            env={**_isolated_env(), **_kafka_env(secure_kafka, PRODUCER), **_writer_env(secure_clickhouse),
                 "RUNSTREAM_SERVER": f"http://127.0.0.1:{server_port}"},
            stdout=server_out, stderr=subprocess.STDOUT, start_new_session=True)
        mlflow = _Mlflow(f"http://127.0.0.1:{server_port}/api/2.0/mlflow")
        wait_until(lambda: mlflow.up(), timeout_s=120, what="runstream server's /health")
        got = mlflow.get("runs/get", run_id=run.id)  # written by the SDK, read as runstream_reader
        assert got["run"]["info"]["status"] == "FINISHED"
        experiment_id = mlflow.get("experiments/get-by-name", experiment_name="secure")["experiment"]["experiment_id"]
        created = mlflow.post("runs/create", experiment_id=experiment_id, start_time=int(time.time() * 1000))
        mlflow_run = created["run"]["info"]["run_id"]
        for step in range(3):
            mlflow.post("runs/log-metric", run_id=mlflow_run, key="mlflow_loss", value=1.0 / (step + 1),
                        timestamp=int(time.time() * 1000), step=step)
        mlflow.post("runs/update", run_id=mlflow_run, status="FINISHED", end_time=int(time.time() * 1000))
        with Workspace(settings=settings) as ws:  # through Kafka and ingest, read by the SDK as the reader
            from_mlflow = _completed_run(Experiment(ws, "secure"), mlflow_run)
            assert from_mlflow.get_metrics()["mlflow_loss"] == [1.0, 0.5, 1.0 / 3]
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(timeout=30)
            exporter_out.close()
        if server is not None:
            server.terminate()
            server_code = server.wait(timeout=60)
            server_out.close()
        assert ingest.stop(timeout_s=60) == 0, ingest.output()
    assert server_code == 0, server_log.read_text(errors="replace")

    passwords = {secure_kafka.password_file(p).read_text().strip() for p in (PRODUCER, INGEST, EXPORTER)}
    passwords |= {secure_clickhouse.password(u) for u in ("default", "runstream_writer", "runstream_reader")}
    logs = {"ingest": ingest.output(), "exporter": exporter_log.read_text(errors="replace"),
            "replay": replay.stdout + replay.stderr, "sdk": sdk_log.read_text(errors="replace"),
            "metrics": metrics_text, "server": server_log.read_text(errors="replace")}
    assert all(logs.values()), {name: len(text) for name, text in logs.items()}
    leaks = [name for name, text in logs.items() if any(pw in text for pw in passwords)]
    where = [line.replace(pw, "<PASSWORD>")[:300] for text in logs.values() for line in text.splitlines()
             for pw in passwords if pw in line]
    assert leaks == [], where[:5]  # the logs and lines that hold a password, the password masked


def _completed_run(experiment: Experiment, run_id: str) -> Run:
    """The run once ingest has written it, Completed (another process logged it: nothing to wait for here)."""

    def completed() -> Run | None:
        try:
            run = Run(experiment, run_id)
        except RunNotFound:
            return None
        return run if run.get_status() == "Completed" else None

    found: Run = wait_until(completed, timeout_s=60, what=f"run {run_id} Completed in ClickHouse")
    return found


class _Mlflow:
    """MLflow's REST API of one server, in plain HTTP (what the mlflow client sends)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def up(self) -> bool:
        try:
            with urllib.request.urlopen(self.base.split("/api/")[0] + "/health", timeout=2) as response:
                return bool(response.read() == b"OK")
        except OSError:
            return False

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.base}/{path}?{query}", timeout=60) as response:
            return json.loads(response.read())

    def post(self, path: str, **body: Any) -> Any:
        request = urllib.request.Request(f"{self.base}/{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())


def _isolated_env() -> dict[str, str]:
    """Our environment without the RUNSTREAM_* of the calling shell (make test exports the plaintext stack's)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}


def _scrape_when_up(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    up = "runstream_kafka_up 1.0" in text and "runstream_clickhouse_up 1.0" in text
    return text if up else None


@pytest.mark.parametrize("what", ["kafka password", "kafka certificate", "clickhouse password",
                                  "clickhouse certificate"])
def test_ingest_stops_at_once_with_one_clear_error(secure_kafka: KafkaInstance,
                                                    secure_clickhouse: ClickHouseInstance, names: dict[str, str],
                                                    tmp_path: Path, what: str) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password")
    wrong.chmod(0o600)
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other",
                    "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other_ca)], check=True, capture_output=True)
    overrides, expected = {
        "kafka password": ({"RUNSTREAM_KAFKA_PASSWORD_FILE": str(wrong)}, "invalid credentials"),
        "kafka certificate": ({"RUNSTREAM_KAFKA_CA_FILE": str(other_ca)}, "does not trust"),
        "clickhouse password": ({"RUNSTREAM_CLICKHOUSE_WRITER_PASSWORD_FILE": str(wrong)}, "Code: 193"),
        "clickhouse certificate": ({"RUNSTREAM_CLICKHOUSE_WRITER": secure_clickhouse.secure_url("runstream_writer")
                                    .replace(str(secure_clickhouse.ca_file), str(other_ca))}, "CERTIFICATE_VERIFY_FAILED"),
    }[what]
    ingest = _ingest(secure_kafka, secure_clickhouse, names, tmp_path / "ingest.log", **overrides).start()
    try:
        code = ingest.proc.wait(timeout=60)  # stops by itself: a retry loop would run until killed
    finally:
        ingest.kill()
    output = ingest.output()
    assert code == 1, output
    assert output.count(expected) == 1, output  # said once, not retried
    assert "not-the-password" not in output


@pytest.mark.parametrize("what", ["password", "certificate"])
def test_the_sdk_says_so_when_kafka_refuses_it(secure_kafka: KafkaInstance, secure_clickhouse: ClickHouseInstance,
                                               names: dict[str, str], tmp_path: Path, what: str) -> None:
    if what == "password":
        overrides: dict[str, Any] = {"kafka_password": Secret("not-the-password")}
        error: type[Exception] = AuthenticationFailed
    else:
        error = CertificateUntrusted
        other = tmp_path / "other-ca.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=other", "-keyout", str(tmp_path / "k"), "-out", str(other)], check=True,
                       capture_output=True)
        overrides = {"kafka_ca_file": other}
    settings = _sdk_settings(secure_kafka, secure_clickhouse, names["topic"], tmp_path / "home", **overrides)
    with Workspace(settings=settings) as ws:
        with pytest.raises(error) as caught:
            Experiment(ws, "secure").start_logging()
    assert "not-the-password" not in str(caught.value)
