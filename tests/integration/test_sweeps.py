"""HyperDrive sweeps end to end: real child processes, read back through the store, on the embedded default
(spool + chDB) and on the real stack (Kafka + `runstream ingest` + ClickHouse), the same tests parametrized.

The fixture script logs a fixed curve of the primary metric per grid point (curves.json), then holds for a
while, so the policy always sees a trial's whole curve while it still runs: which trials a policy stops, and
at which interval, follows from the rules alone. Trials run one at a time in the policy tests, so every trial
is compared with the complete curves of the ones before it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from consumers.testing import wait_until
from producers import (
    BanditPolicy,
    Experiment,
    GridParameterSampling,
    HyperDriveConfig,
    MedianStoppingPolicy,
    PrimaryMetricGoal,
    RandomParameterSampling,
    Run,
    ScriptRunConfig,
    TruncationSelectionPolicy,
    Workspace,
    choice,
    uniform,
)
from producers.errors import RunNotFound
from runstream.server.reads import ServerReads
from runstream.server.ui_api import UiSettings, ui_routes
from schemas.settings import IngestSettings

from pipelines import backend_settings

REPO = Path(__file__).resolve().parents[2]
HOLD_S = 6.0
"""How long a trial lives after logging its curve: the policy's read-and-stop must fit in it."""

TRAIN = """
    import argparse, json, os, sys, time
    from producers import Run

    parser = argparse.ArgumentParser()
    parser.add_argument("--curve", default="")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--lr", type=float, default=0.0)
    parser.add_argument("--k", type=int, default=0)
    args = parser.parse_args()
    run = Run.get_context()
    open(os.path.join(os.environ["PIDS_DIR"], str(os.getpid())), "w").write(run.id)
    if args.curve == "boom":
        raise ValueError("boom: this grid point fails")
    curve = json.load(open("curves.json"))[args.curve] if args.curve else [args.lr + args.k]
    for value in curve:
        run.log("mse", value)
    run.parent.log("seen", len(curve))          # a child logs to its parent
    run.flush()
    time.sleep(args.sleep)
"""


@dataclass
class Backend:
    name: str
    home: Path
    env: dict[str, str]
    workspaces: list[Workspace] = field(default_factory=list)

    def workspace(self) -> Workspace:
        ws = Workspace(home=self.home, kafka=self.env.get("RUNSTREAM_KAFKA"),
                       clickhouse=self.env.get("RUNSTREAM_CLICKHOUSE"), topic=self.env.get("RUNSTREAM_TOPIC"),
                       install_signal_handlers=False)
        self.workspaces.append(ws)
        return ws

    def child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
        env.update(self.env, PYTHONPATH=str(REPO))
        return env


@pytest.fixture(scope="module", params=["embedded", "stack"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    base = tmp_path_factory.mktemp(f"sweep-{request.param}")
    with backend_settings(request, base, "rs_sweep") as env:
        b = Backend(request.param, base / "home", env)
        yield b
        for ws in b.workspaces:
            ws.close(10)


@pytest.fixture
def src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("PIDS_DIR", str(pids))
    for var in ("RUNSTREAM_KAFKA", "RUNSTREAM_CLICKHOUSE", "RUNSTREAM_HOME", "RUNSTREAM_TOPIC", "RUNSTREAM_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text(textwrap.dedent(TRAIN))
    return folder


def curves(src: Path, data: dict[str, list[float]]) -> None:
    (src / "curves.json").write_text(json.dumps(data))


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def trial_pids(src: Path) -> list[int]:
    return [int(p.name) for p in (src.parent / "pids").iterdir()]


def trial_state(pid: int) -> str:
    """A trial process's state, parent and the kernel function it waits in, and its command line."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except FileNotFoundError:
        return "gone"
    return f"state {fields[0]}, parent {fields[1]}, waiting in {wchan or '-'}: {command}"


def sweep(backend: Backend, src: Path, sampling, *, goal=PrimaryMetricGoal.MINIMIZE, policy=None, concurrent=1,
          total=None, arguments=None, minutes=10.0):
    config = HyperDriveConfig(run_config=ScriptRunConfig(str(src), "train.py", arguments=arguments),
                              hyperparameter_sampling=sampling, policy=policy, primary_metric_name="mse",
                              primary_metric_goal=goal, max_total_runs=total, max_concurrent_runs=concurrent,
                              max_duration_minutes=minutes)
    experiment = Experiment(backend.workspace(), f"sweep-{uuid.uuid4().hex[:8]}")
    return experiment, experiment.submit(config)


def by_curve(hd_run) -> dict[str, Run]:
    return {json.loads(child.get_properties()["hyperparameters"])["--curve"]: child
            for child in hd_run.get_children()}


def stop_interval(child: Run) -> int | None:
    details = child.get_details()
    if details["status"] != "Canceled":
        return None
    reason = details["error"]["message"]
    return int(reason.split("at interval ")[1].split(":")[0])


def test_grid_runs_every_combination_once_under_the_concurrency_limit(backend: Backend, src: Path) -> None:
    sampling = GridParameterSampling({"--lr": choice(0.1, 0.2, 0.3), "--k": choice(1, 2)})
    experiment, hd_run = sweep(backend, src, sampling, concurrent=2, arguments=["--sleep", 0.5])
    details = hd_run.wait_for_completion()
    assert details["status"] == "Completed"
    children = list(hd_run.get_children())
    assert len(children) == 6
    params = sorted((json.loads(c.get_properties()["hyperparameters"])["--lr"],
                     json.loads(c.get_properties()["hyperparameters"])["--k"]) for c in children)
    assert params == [(lr, k) for lr in (0.1, 0.2, 0.3) for k in (1, 2)]
    spans = []
    for child in children:
        d = child.get_details()
        assert d["status"] == "Completed" and d["parentRunId"] == hd_run.id
        spans.append((datetime.fromisoformat(d["startTimeUtc"]), datetime.fromisoformat(d["endTimeUtc"])))
    for start, _ in spans:  # at no child's start are more than 2 running (spans are half-open)
        assert sum(1 for s, e in spans if s <= start < e) <= 2
    # Top-level listing hides the children; include_children shows them.
    assert [r.id for r in experiment.get_runs()] == [hd_run.id]
    assert len(list(experiment.get_runs(include_children=True))) == 7
    assert Run(experiment, hd_run.id).get_metrics()["seen"] == [1] * 6      # each child logged to its parent
    assert set(hd_run.get_metrics()) == {c.id for c in children}              # Azure's: the children's metrics


def test_random_sampling_runs_max_total_runs_trials_reproducibly(backend: Backend, src: Path) -> None:
    sampling = RandomParameterSampling({"--lr": uniform(0.0, 1.0), "--k": choice(1, 2, 3)}, seed=11)
    _, hd_run = sweep(backend, src, sampling, concurrent=3, total=5)
    hd_run.wait_for_completion()
    children = list(hd_run.get_children())
    assert len(children) == 5
    expected = list(itertools.islice(RandomParameterSampling(sampling.parameter_space).trials(seed=11), 5))
    got = sorted((json.loads(c.get_properties()["hyperparameters"]) for c in children), key=lambda p: p["--lr"])
    assert got == sorted(expected, key=lambda p: p["--lr"])
    assert hd_run.get_properties()["seed"] == "11"


def test_bandit_stops_exactly_the_trials_its_rule_says(backend: Backend, src: Path) -> None:
    # The policy, minimizing mse. At interval 4 the best is 0.5, the limit 0.55: "c" (0.56) stops.
    # At interval 6 the best is 0.4, the limit 0.44: "d" (0.46) stops; "b" (0.41) runs on. Interval 2 is
    # before delay_evaluation: "d" (1.0 there, against 0.7) is not stopped then.
    curves(src, {"a": [1.0, 0.8, 0.6, 0.5, 0.45, 0.4], "b": [1.0, 0.7, 0.5, 0.52, 0.5, 0.41],
                 "c": [1.0, 0.9, 0.8, 0.56, 0.56, 0.56], "d": [2.0, 1.0, 0.6, 0.54, 0.5, 0.46]})
    policy = BanditPolicy(evaluation_interval=2, slack_factor=0.1, delay_evaluation=4)
    _, hd_run = sweep(backend, src, GridParameterSampling({"--curve": choice("a", "b", "c", "d")}), policy=policy,
                      arguments=["--sleep", HOLD_S])
    hd_run.wait_for_completion()
    children = by_curve(hd_run)
    assert {name: stop_interval(c) for name, c in children.items()} == {"a": None, "b": None, "c": 4, "d": 6}
    assert children["a"].get_status() == "Completed"
    assert hd_run.get_best_run_by_primary_metric().id == children["a"].id
    ranked = hd_run.get_children_sorted_by_primary_metric(top=2)
    assert [r["run_id"] for r in ranked] == [children["a"].id, children["b"].id]
    assert ranked[0]["best_primary_metric"] == 0.4 and ranked[0]["hyperparameters"] == {"--curve": "a"}
    logs = "\n".join(line.message for line in hd_run.experiment.workspace.reader().get_logs(hd_run.id))
    assert "stopped: BanditPolicy at interval 4" in logs and "stopped: BanditPolicy at interval 6" in logs


def test_median_stopping_and_best_run_when_maximizing(backend: Backend, src: Path) -> None:
    # At interval 2: running averages a .55, b .45, c .25 -> median .45; c's best .3 is below: c stops.
    # d at 2: averages .55 .45 .25 .5 -> median .475, best .6 runs on; at 3 the median is .483: runs on.
    curves(src, {"a": [0.5, 0.6, 0.7], "b": [0.4, 0.5, 0.6], "c": [0.2, 0.3, 0.9], "d": [0.6, 0.4, 0.4]})
    _, hd_run = sweep(backend, src, GridParameterSampling({"--curve": choice("a", "b", "c", "d")}),
                      goal=PrimaryMetricGoal.MAXIMIZE, policy=MedianStoppingPolicy(delay_evaluation=2),
                      arguments=["--sleep", HOLD_S])
    hd_run.wait_for_completion()
    children = by_curve(hd_run)
    assert {name: stop_interval(c) for name, c in children.items()} == {"a": None, "b": None, "c": 2, "d": None}
    # c logged 0.9 before it was stopped: best overall, unless canceled trials are left out.
    assert hd_run.get_best_run_by_primary_metric().id == children["c"].id
    assert hd_run.get_best_run_by_primary_metric(include_canceled=False).id == children["a"].id


def test_truncation_selection_stops_the_lowest_percentage(backend: Backend, src: Path) -> None:
    # 50%: at interval 1 "c" (2.0) is the worst of 3 -> cut 1 -> stopped; "d" ranks 3rd of 4 (cut 2): runs on.
    curves(src, {"a": [1.0, 0.9], "b": [0.5, 0.4], "c": [2.0, 2.0], "d": [0.7, 0.2]})
    _, hd_run = sweep(backend, src, GridParameterSampling({"--curve": choice("a", "b", "c", "d")}),
                      policy=TruncationSelectionPolicy(50), arguments=["--sleep", HOLD_S])
    hd_run.wait_for_completion()
    assert {n: stop_interval(c) for n, c in by_curve(hd_run).items()} == {"a": None, "b": None, "c": 1, "d": None}


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(backend: Backend, src: Path) -> None:
    curves(src, {"a": [0.3], "b": [0.2]})
    _, hd_run = sweep(backend, src, GridParameterSampling({"--curve": choice("a", "boom", "b")}))
    details = hd_run.wait_for_completion()
    assert details["status"] == "Completed"
    children = by_curve(hd_run)
    assert [children[n].get_status() for n in ("a", "boom", "b")] == ["Completed", "Failed", "Completed"]
    assert "ValueError: boom" in children["boom"].get_details()["error"]["message"]
    assert hd_run.get_best_run_by_primary_metric().id == children["b"].id
    assert hd_run.get_best_run_by_primary_metric(include_failed=False).id == children["b"].id


def test_cancel_stops_every_running_trial(backend: Backend, src: Path) -> None:
    _, hd_run = sweep(backend, src, GridParameterSampling({"--k": choice(1, 2, 3, 4, 5)}), concurrent=2,
                      arguments=["--sleep", 60])
    wait_until(lambda: len(trial_pids(src)) == 2, timeout_s=30)
    hd_run.cancel()
    details = hd_run.wait_for_completion()
    assert details["status"] == "Canceled"
    children = list(hd_run.get_children())
    assert len(children) == 2 and all(c.get_status() == "Canceled" for c in children)
    assert not any(alive(pid) for pid in trial_pids(src))


def test_a_killed_launcher_leaves_no_trial_running(backend: Backend, src: Path, tmp_path: Path) -> None:
    # The trials would live far past the wait below on their own: only their launcher's death can end them.
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        from producers import *
        hd = HyperDriveConfig(run_config=ScriptRunConfig({str(src)!r}, "train.py", arguments=["--sleep", 900]),
                              hyperparameter_sampling=GridParameterSampling({{"--k": choice(1, 2, 3)}}),
                              primary_metric_name="mse", primary_metric_goal="minimize", max_concurrent_runs=3)
        run = Experiment(Workspace(), "sweep-killed").submit(hd)
        print(run.id, flush=True)
        run.wait_for_completion()
    """))
    proc = subprocess.Popen([sys.executable, str(driver)], env=backend.child_env() | {"PIDS_DIR": os.environ["PIDS_DIR"]},
                            stdout=subprocess.DEVNULL)
    try:
        try:
            wait_until(lambda: len(trial_pids(src)) == 3, timeout_s=60, what="3 trials running")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        # Each trial gets SIGTERM from the kernel (PR_SET_PDEATHSIG) as its launcher dies, and its handler
        # flushes (up to exit_timeout_s, 10 s) before the process ends: 60 s covers that on a loaded machine.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(alive(pid) for pid in trial_pids(src)):
            time.sleep(0.2)
        survivors = {pid: trial_state(pid) for pid in trial_pids(src) if alive(pid)}
        assert not survivors, f"trials still running 60 s after their launcher was killed: {survivors}"
    finally:
        for pid in trial_pids(src):  # a failed run of this test leaves no trial behind for 15 minutes
            if alive(pid) and str(src / "train.py") in trial_state(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def sigint_not_ignored() -> Iterator[None]:
    """Children started inside get SIGINT's default action, so Python turns it into KeyboardInterrupt.

    A background job of a non-interactive shell (``cmd &``) starts with SIGINT
    ignored, and an ignored signal stays ignored across exec, where a handled
    one is reset: without this, a test run started that way sent Ctrl-C to a
    `runstream sweep` that could not hear it (it ran to completion, exit 0).
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_on_runstream_sweep_cancels_the_sweep(backend: Backend, src: Path, tmp_path: Path) -> None:
    spec = tmp_path / "sweep.yaml"
    spec.write_text(textwrap.dedent(f"""
        experiment: sweep-cli
        source_directory: {src}
        script: train.py
        arguments: [--sleep, 60]
        sampling: grid
        parameters: {{--k: "choice(1, 2, 3)"}}
        primary_metric_name: mse
        primary_metric_goal: minimize
        max_concurrent_runs: 2
    """))
    with sigint_not_ignored():  # as from a terminal, also when this test runs in a background job
        proc = subprocess.Popen([sys.executable, "-m", "runstream", "sweep", "--file", str(spec)],
                                env=backend.child_env() | {"PIDS_DIR": os.environ["PIDS_DIR"]},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: len(trial_pids(src)) == 2, timeout_s=60)
    proc.send_signal(signal.SIGINT)
    try:
        # Cancelling waits for every trial's SIGTERM grace and final status: slow on a loaded 2-core CI machine.
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()  # close the pipes here, not in a later test's garbage collection
        raise
    assert proc.returncode == 130, err
    assert not any(alive(pid) for pid in trial_pids(src))
    parent_id = next(line.split()[2] for line in err.splitlines() if line.startswith("runstream: sweep "))
    ws = backend.workspace()
    found: list[Run] = []

    def parent_canceled() -> bool:
        try:  # on the stack, ingest may not have written the parent yet
            found[:] = [Run(Experiment(ws, "sweep-cli"), parent_id)]
            return found[0].get_status() == "Canceled"
        except RunNotFound:
            return False

    wait_until(parent_canceled, timeout_s=30)
    parent = found[0]
    assert all(c.get_status() == "Canceled" for c in parent.get_children())


def test_sigterm_to_the_submitting_process_cancels_the_sweep(backend: Backend, src: Path, tmp_path: Path) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        from producers import *
        hd = HyperDriveConfig(run_config=ScriptRunConfig({str(src)!r}, "train.py", arguments=["--sleep", 60]),
                              hyperparameter_sampling=GridParameterSampling({{"--k": choice(1, 2, 3)}}),
                              primary_metric_name="mse", primary_metric_goal="minimize", max_concurrent_runs=2)
        run = Experiment(Workspace(), "sweep-sigterm").submit(hd)
        print(run.id, flush=True)
        run.wait_for_completion()
    """))
    proc = subprocess.Popen([sys.executable, str(driver)], env=backend.child_env() | {"PIDS_DIR": os.environ["PIDS_DIR"]},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    parent_id = proc.stdout.readline().strip()
    wait_until(lambda: len(trial_pids(src)) == 2, timeout_s=60)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=90)
    assert proc.returncode == -signal.SIGTERM
    assert not any(alive(pid) for pid in trial_pids(src))
    parent = Run(Experiment(backend.workspace(), "sweep-sigterm"), parent_id)
    wait_until(lambda: parent.get_status() == "Canceled", timeout_s=30)
    children = list(parent.get_children())
    assert len(children) == 2 and all(c.get_status() == "Canceled" for c in children)
    assert "SIGTERM" in parent.get_details()["error"]["message"]


def test_the_ui_sweep_view_shows_a_sweeps_children(backend: Backend, src: Path) -> None:
    sampling = GridParameterSampling({"--lr": choice(0.1, 0.2), "--k": choice(1, 2)})
    experiment, hd_run = sweep(backend, src, sampling, concurrent=2)
    assert hd_run.wait_for_completion()["status"] == "Completed"
    env = backend.env
    settings = IngestSettings.resolve({"home": backend.home, "kafka": env.get("RUNSTREAM_KAFKA"),
                                       "clickhouse": env.get("RUNSTREAM_CLICKHOUSE"),
                                       "topic": env.get("RUNSTREAM_TOPIC")}, env={})
    reads = ServerReads(settings)
    reads.start()
    try:
        reads.settle()
        app = Starlette(routes=ui_routes(reads.connect, UiSettings()))
        with TestClient(app) as client:
            def children() -> dict | None:
                response = client.get("/api/ui/runs", params={"parent": hd_run.id, "metric": "mse"})
                assert response.status_code == 200, response.text
                body = response.json()
                done = len(body["runs"]["run_id"]) == 4 and set(body["runs"]["status"]) == {"Completed"}
                return body if done and None not in body["metrics"]["mse"]["min"] else None

            body = wait_until(children, timeout_s=60, what="the sweep's 4 children, ended, with their mse")
            run_page = client.get("/api/ui/run", params={"run": hd_run.id}).json()["run"]
            top_level = client.get("/api/ui/runs", params={"experiment": experiment.name}).json()
    finally:
        reads.stop()
    runs, sweep_info = body["runs"], body["sweep"]
    assert body["experiment"] == experiment.name and set(runs["parent_run_id"]) == {hd_run.id}
    assert sweep_info["primary_metric_name"] == "mse" and sweep_info["goal"] == "min"
    assert sweep_info["sampling"] == "grid" and "hyperparameters" in sweep_info["trial_properties"]
    # One column per sampled parameter, aligned with the runs: the leaderboard's and the charts' axes.
    lr, k = sweep_info["params"]["--lr"], sweep_info["params"]["--k"]
    assert sorted(zip(lr, k)) == [("0.1", "1"), ("0.1", "2"), ("0.2", "1"), ("0.2", "2")]
    for i in range(4):   # the fixture script logs mse = lr + k
        assert body["metrics"]["mse"]["min"][i] == pytest.approx(float(lr[i]) + int(k[i]))
    best = min(range(4), key=lambda i: body["metrics"]["mse"]["min"][i])
    assert runs["run_id"][best] == hd_run.get_best_run_by_primary_metric().id
    # The parent's page links its children (the sweep view); an experiment's runs carry no sweep.
    assert run_page["kind"] == "hyperdrive" and run_page["children"] == 4
    assert top_level["sweep"] is None and hd_run.id in top_level["runs"]["run_id"]


def test_runstream_sweep_shows_progress_and_its_result(backend: Backend, src: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "runstream", "sweep", "train.py", "-e", "sweep-cli-table",
               "--source-directory", str(src), "--sampling", "grid", "--param", "--k=choice(1, 2)",
               "--primary-metric-name", "mse", "--primary-metric-goal", "minimize"]
    env = backend.child_env() | {"PIDS_DIR": os.environ["PIDS_DIR"]}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # Without a terminal the table is printed again at each status change: the last one has both trials ended.
    last_table = done.stdout.strip().split("\n\n")[-1]
    assert last_table.count("Completed") == 2 and "--k" in last_table and "mse" in last_table, done.stdout
    assert "best trial" in done.stderr and "mse 1 with" in done.stderr and "Completed" in done.stderr
    # A bad sweep is refused before any run exists, with the reason and exit code 2.
    bad = subprocess.run([*command[:-4], "--primary-metric-goal", "minimize"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "primary_metric_name" in bad.stderr, bad.stderr
    missing = subprocess.run([*command[:4], "nowhere.py", *command[5:]], env=env, capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 2 and "nowhere.py" in missing.stderr, missing.stderr
