"""``runstream server``: MLflow's tracking REST API (and, from the UI issue, the web UI) over runstream.

``create_app`` builds the Starlette app from a tracking backend; ``serve`` runs
it under uvicorn with a graceful shutdown on SIGTERM.
"""

from .app import create_app, serve

__all__ = ["create_app", "serve"]
