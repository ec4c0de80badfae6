"""runstream's training-side SDK: an Azure-ML-style Run API over a non-blocking emitter.

    from producers import Workspace, Experiment, Run

    ws = Workspace()                                   # env / defaults; Workspace.from_config() reads runstream.json
    with Experiment(ws, "mnist").start_logging() as run:
        for epoch in range(10):
            run.log("loss", 0.5 / (epoch + 1))

Diagnostics go to ``logging.getLogger("runstream")`` (a NullHandler here;
``logging.basicConfig(level=logging.DEBUG)`` shows them).
"""

import logging as _logging

from .errors import (
    BufferFull,
    ConfigurationError,
    IngestNotRunning,
    InvalidLogCall,
    InvalidValueType,
    ReadError,
    RunNotActive,
    RunNotFound,
    SdkError,
    TransportError,
)
from .experiment import Experiment
from .run import Run
from .settings import WorkspaceSettings
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
]
