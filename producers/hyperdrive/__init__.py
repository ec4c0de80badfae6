"""Sweeps as runs, Azure ML's HyperDrive: search spaces, samplers, early-termination policies, the config.

    from producers import HyperDriveConfig, GridParameterSampling, BanditPolicy, PrimaryMetricGoal, choice

Pure logic lives here, one job per module: :mod:`.parameters` (choice,
uniform, ...), :mod:`.sampling` (grid, random), :mod:`.goal`
(PrimaryMetricGoal), :mod:`.policies` (Bandit, median stopping, truncation
selection), :mod:`.config` (HyperDriveConfig), :mod:`.scheduler` (launch and
stop decisions under the limits), :mod:`.spec` (a sweep written as data).
"""

from .config import HyperDriveConfig
from .goal import PrimaryMetricGoal
from .parameters import (
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
from .policies import BanditPolicy, MedianStoppingPolicy, NoTerminationPolicy, TruncationSelectionPolicy
from .sampling import GridParameterSampling, RandomParameterSampling

__all__ = [
    "HyperDriveConfig",
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
