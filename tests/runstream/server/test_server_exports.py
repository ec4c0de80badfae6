import runstream.server as server
from runstream.server import app, mlflow_api, mlflow_backend, mlflow_rules, mlflow_search, mlflow_wire, testing


def test_exports_are_pinned():
    assert server.__all__ == ["create_app", "serve"]
    assert app.__all__ == ["create_app", "serve"]
    assert mlflow_api.__all__ == ["MlflowApi", "MLFLOW_COMPATIBLE_VERSION", "HISTORY_PAGE_SIZE", "artifact_uri"]
    assert testing.__all__ == ["InMemoryTrackingBackend"]
    assert "TrackingBackend" in mlflow_backend.__all__ and "MlflowError" in mlflow_wire.__all__
    assert {"search_runs", "search_experiments", "parse_filter"} <= set(mlflow_search.__all__)
    assert {"check_batch", "new_params", "check_artifact_path"} <= set(mlflow_rules.__all__)
    for module in (app, mlflow_api, mlflow_backend, mlflow_rules, mlflow_search, mlflow_wire, testing):
        for name in module.__all__:
            assert getattr(module, name).__doc__ or not callable(getattr(module, name)), name
