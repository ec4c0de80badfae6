"""``runstream server``: MLflow's tracking REST API and the web UI over runstream.

``create_app`` builds the Starlette app (one list of routes: ``/health``,
MLflow's ``/api/2.0/mlflow``, its artifacts, then the UI's pages and
``/api/ui/``); ``serve`` runs it under uvicorn with a graceful shutdown on
SIGTERM. :mod:`.reads` decides where the server reads and who ingests.
"""

from .app import create_app, serve

__all__ = ["create_app", "serve"]
