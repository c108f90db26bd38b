"""Baseline for bench/ingest.py: a bare Flask endpoint that does one insert.

It reads the same form-encoded body and writes one row, with none of the
app's parsing, verification or de-duplication, so the ratio shows what those
cost. Run by gunicorn as ``baseline_app:app`` with BENCH_DATABASE_URL set.
"""

import json
import os

from flask import Flask, request
from sqlalchemy import create_engine, text

app = Flask(__name__)
engine = create_engine(os.environ["BENCH_DATABASE_URL"])

KEY_TYPE = "INTEGER" if engine.dialect.name == "sqlite" else "BIGSERIAL"

with engine.begin() as connection:
    connection.execute(
        text(
            "CREATE TABLE IF NOT EXISTS baseline_events "
            f"(id {KEY_TYPE} PRIMARY KEY, body TEXT)"
        )
    )


@app.post("/events")
def events():
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO baseline_events (body) VALUES (:body)"),
            {"body": json.dumps(request.form.to_dict())},
        )
    return {"status": "queued"}
