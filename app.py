"""WSGI entry point: ``gunicorn app:app``."""

from b24app import create_app

app = create_app()
