"""MLflow client call sequences the server must serve, with the real ``mlflow`` package.

``LightningMLFlowLogger`` replays PyTorch Lightning's ``MLFlowLogger``
(``src/lightning/pytorch/loggers/mlflow.py``, Lightning 2.x) call for call:
the same ``MlflowClient`` methods in the same order, params flattened with
``/``, cut to 250 characters and sent in ``log_batch`` chunks of 100, one
metric ``log_batch`` per ``log_metrics`` call with one timestamp and
``step or 0``, string values dropped, names stripped to ``[a-zA-Z0-9_/. -]``,
``finalize`` = ``get_run`` then ``set_terminated``. Lightning itself is not
installed here: torch's PyPI wheel pulls the CUDA toolkit (gigabytes) and the
CPU wheel index is not reachable (see runstream/server/DESIGN-mlflow.md).
"""

from __future__ import annotations

import re
import time
from argparse import Namespace
from collections.abc import Mapping, MutableMapping
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

PARAM_VALUE_CUT = 250
PARAMS_PER_BATCH = 100


def _flatten(params: Mapping[str, Any], parent: str = "", delimiter: str = "/") -> dict[str, Any]:
    # lightning.fabric.utilities.logger._flatten_dict
    out: dict[str, Any] = {}
    for key, value in params.items():
        new_key = f"{parent}{delimiter}{key}" if parent else str(key)
        if isinstance(value, Namespace):
            value = vars(value)
        if isinstance(value, MutableMapping):
            out.update(_flatten(value, new_key, delimiter))
        else:
            out[new_key] = value
    return out


class LightningMLFlowLogger:
    """The MLflow calls of Lightning's ``MLFlowLogger``; set ``_run_id`` to log into an existing run."""

    LOGGER_JOIN_CHAR = "-"

    def __init__(self, experiment_name: str = "lightning_logs", tracking_uri: str | None = None,
                 tags: dict[str, Any] | None = None, prefix: str = "", run_id: str | None = None) -> None:
        self._experiment_name = experiment_name
        self._experiment_id: str | None = None
        self._tracking_uri = tracking_uri
        self._run_id = run_id
        self.tags = tags
        self._prefix = prefix
        self._initialized = False
        self._mlflow_client = MlflowClient(tracking_uri)

    @property
    def experiment(self) -> MlflowClient:
        import mlflow

        if self._initialized:
            return self._mlflow_client
        mlflow.set_tracking_uri(self._tracking_uri)
        if self._run_id is not None:
            run = self._mlflow_client.get_run(self._run_id)
            self._experiment_id = run.info.experiment_id
            self._initialized = True
            return self._mlflow_client
        if self._experiment_id is None:
            expt = self._mlflow_client.get_experiment_by_name(self._experiment_name)
            if expt is not None:
                self._experiment_id = expt.experiment_id
            else:
                self._experiment_id = self._mlflow_client.create_experiment(name=self._experiment_name)
        from mlflow.tracking.context.registry import resolve_tags

        run = self._mlflow_client.create_run(experiment_id=self._experiment_id, tags=resolve_tags(self.tags))
        self._run_id = run.info.run_id
        self._initialized = True
        return self._mlflow_client

    @property
    def run_id(self) -> str | None:
        _ = self.experiment
        return self._run_id

    def log_hyperparams(self, params: dict[str, Any] | Namespace) -> None:
        params = vars(params) if isinstance(params, Namespace) else params
        flat = _flatten(params)
        params_list = [Param(key=k, value=str(v)[:PARAM_VALUE_CUT]) for k, v in flat.items()]
        for idx in range(0, len(params_list), PARAMS_PER_BATCH):
            self.experiment.log_batch(run_id=self.run_id, params=params_list[idx: idx + PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float | str], step: int | None = None) -> None:
        if self._prefix:
            metrics = {f"{self._prefix}{self.LOGGER_JOIN_CHAR}{k}": v for k, v in metrics.items()}
        metrics_list: list[Metric] = []
        timestamp_ms = int(time.time() * 1000)
        for k, v in metrics.items():
            if isinstance(v, str):
                continue  # Lightning warns "Discarding metric with string value"
            k = re.sub("[^a-zA-Z0-9_/. -]+", "", k)
            metrics_list.append(Metric(key=k, value=v, timestamp=timestamp_ms, step=step or 0))
        self.experiment.log_batch(run_id=self.run_id, metrics=metrics_list)

    def finalize(self, status: str = "success") -> None:
        if not self._initialized:
            return
        status = {"success": "FINISHED", "failed": "FAILED", "finished": "FINISHED"}.get(status, status)
        if self.experiment.get_run(self.run_id):
            self.experiment.set_terminated(self.run_id, status)


def train_and_test(logger: LightningMLFlowLogger, *, hparams: dict[str, Any], epochs: int,
                   steps_per_epoch: int) -> None:
    """What a ``Trainer.fit`` then ``Trainer.test`` make the logger do."""
    logger.log_hyperparams(hparams)
    step = 0
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            logger.log_metrics({"train_loss": 1.0 / (step + 1), "epoch": float(epoch), "lr-Adam": 0.01,
                                "note": "dropped"}, step=step)
            step += 1
        logger.log_metrics({"val_loss": 1.0 / (epoch + 2), "val_acc@1": 0.5 + epoch / 100}, step=step - 1)
    logger.finalize("success")
    logger.log_metrics({"test_acc": 0.93}, step=step)  # trainer.test() after fit's finalize
    logger.finalize("success")
