"""runstream's training-side SDK: an Azure-ML-style Run API over a non-blocking emitter.

    from producers import Workspace, Experiment, Run

    ws = Workspace()                                   # env / defaults; Workspace.from_config() reads runstream.json
    with Experiment(ws, "mnist").start_logging() as run:
        for epoch in range(10):
            run.log("loss", 0.5 / (epoch + 1))

    run = Experiment(ws, "mnist").submit(ScriptRunConfig("src", "train.py"))   # a script as a run
    run.wait_for_completion(show_output=True)

Diagnostics go to ``logging.getLogger("runstream")`` (a NullHandler here;
``logging.basicConfig(level=logging.DEBUG)`` shows them).
"""

import logging as _logging

from schemas.settings import WorkspaceSettings

from .errors import (
    BufferFull,
    ConfigurationError,
    IngestNotRunning,
    InvalidLogCall,
    InvalidValueType,
    JobFailed,
    ReadError,
    RunNotActive,
    RunNotFound,
    SdkError,
    TransportError,
)
from .hyperdrive import (
    BanditPolicy,
    GridParameterSampling,
    HyperDriveConfig,
    MedianStoppingPolicy,
    NoTerminationPolicy,
    PrimaryMetricGoal,
    RandomParameterSampling,
    TruncationSelectionPolicy,
    choice,
    lognormal,
    loguniform,
    normal,
    qlognormal,
    qloguniform,
    qnormal,
    quniform,
    randint,
    uniform,
)
from .hyperdrive.run import HyperDriveRun
from .jobs.config import JobEnvironment, ScriptRunConfig
from .log_handler import RunLogHandler
from .run import Experiment, Run
from .workspace import Workspace

_logging.getLogger("runstream").addHandler(_logging.NullHandler())

__all__ = [
    "Workspace",
    "Experiment",
    "Run",
    "WorkspaceSettings",
    "SdkError",
    "InvalidLogCall",
    "InvalidValueType",
    "RunNotActive",
    "TransportError",
    "BufferFull",
    "ConfigurationError",
    "ReadError",
    "RunNotFound",
    "IngestNotRunning",
    "ScriptRunConfig",
    "JobEnvironment",
    "RunLogHandler",
    "JobFailed",
    "HyperDriveConfig",
    "HyperDriveRun",
    "PrimaryMetricGoal",
    "GridParameterSampling",
    "RandomParameterSampling",
    "choice",
    "randint",
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
    "normal",
    "qnormal",
    "lognormal",
    "qlognormal",
    "BanditPolicy",
    "MedianStoppingPolicy",
    "TruncationSelectionPolicy",
    "NoTerminationPolicy",
]
