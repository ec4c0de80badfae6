import importlib

import producers

MODULES = ["producers", "producers.errors", "producers.values", "producers.transport", "producers.chunking",
           "producers.kafka_transport", "producers.failover", "producers.outbox", "producers.emitter",
           "producers.lifecycle", "producers.testing", "producers.files", "producers.workspace", "producers.run",
           "producers.reading", "producers.spool_tools", "producers.log_handler", "producers.job_bootstrap",
           "producers.jobs", "producers.jobs.capture", "producers.jobs.config", "producers.jobs.environment",
           "producers.jobs.logs", "producers.jobs.outputs", "producers.jobs.process", "producers.jobs.registry",
           "producers.jobs.waiting", "producers.uploads"]


def test_public_names_are_pinned() -> None:
    assert producers.__all__[:3] == ["Workspace", "Experiment", "Run"]
    assert sorted(producers.__all__) == sorted([
        "Workspace", "Experiment", "Run", "WorkspaceSettings", "SdkError", "InvalidLogCall", "InvalidValueType",
        "RunNotActive", "TransportError", "BufferFull", "ConfigurationError", "ReadError", "RunNotFound",
        "IngestNotRunning", "ScriptRunConfig", "JobEnvironment", "RunLogHandler", "JobFailed",
        "HyperDriveConfig", "HyperDriveRun", "PrimaryMetricGoal", "GridParameterSampling", "RandomParameterSampling",
        "choice", "randint", "uniform", "quniform", "loguniform", "qloguniform", "normal", "qnormal", "lognormal",
        "qlognormal", "BanditPolicy", "MedianStoppingPolicy", "TruncationSelectionPolicy", "NoTerminationPolicy",
    ])
    assert sorted(importlib.import_module("producers.jobs").__all__) == sorted([
        "ENV_ERROR_FILE", "ENV_SUBMITTER_PID", "Job", "JobEnvironment", "JobResult", "ScriptRunConfig",
        "exit_code_of", "job_of", "wait_for_completion", "wait_result"])
    assert importlib.import_module("producers.log_handler").__all__ == ["RunLogHandler"]
    assert importlib.import_module("producers.uploads").__all__ == ["Uploader"]
    assert sorted(importlib.import_module("producers.spool_tools").__all__) == sorted([
        "SegmentInfo", "SpoolDirStatus", "SpoolStatus", "ReplayProgress", "ReplayResult", "spool_status", "replay",
        "format_status"])
    assert sorted(importlib.import_module("producers.testing").__all__) == ["InMemoryTransport", "ManualClock",
                                                                           "SentMessage"]


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in MODULES:
        module = importlib.import_module(name)
        assert module.__doc__, name
        for exported in module.__all__:
            obj = getattr(module, exported)
            if callable(obj) and not isinstance(obj, (int, str)) and exported[0].isalpha():
                assert getattr(obj, "__doc__", None), f"{name}.{exported} has no docstring"


def test_errors_keep_azure_compatible_bases() -> None:
    from producers.errors import BufferFull, PipelineError, TransportError

    assert issubclass(producers.InvalidLogCall, ValueError) and issubclass(producers.InvalidValueType, TypeError)
    assert issubclass(BufferFull, TransportError) and BufferFull.retriable
    assert issubclass(producers.ConfigurationError, ValueError) and issubclass(producers.SdkError, PipelineError)
    assert issubclass(producers.JobFailed, producers.SdkError) and not producers.JobFailed.retriable


def test_sdk_diagnostics_have_a_null_handler() -> None:
    import logging

    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("runstream").handlers)
