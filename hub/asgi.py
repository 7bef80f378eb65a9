"""ASGI entry point for uvicorn/gunicorn workers: `uvicorn hub.asgi:app` (settings from the environment)."""

from hub.app import create_app

app = create_app()
