"""``b24app classify``: tag lead messages from a JSONL file."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from .evaluate import evaluate, format_table
from .model import build_engine

logger = logging.getLogger(__name__)

ENV_BASE_URL = "OTKLIK_LLM_BASE_URL"
ENV_MODEL = "OTKLIK_LLM_MODEL"
ENV_API_KEY = "OTKLIK_LLM_API_KEY"


class RecordError(ValueError):
    """One input line cannot be classified."""


def parse_record(line: str, zone: ZoneInfo) -> tuple[dict[str, Any], datetime]:
    """Parse one JSONL line into its record and arrival time in ``zone``."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise RecordError(f"invalid JSON ({err.msg})") from err
    if not isinstance(record, dict):
        raise RecordError("a record must be a JSON object")
    if record.get("id") in (None, ""):
        raise RecordError("missing field 'id'")
    if not isinstance(record.get("text"), str):
        raise RecordError("missing or non-string field 'text'")

    raw_time = record.get("received_at")
    if raw_time in (None, ""):
        received_at = datetime.now(zone)
    else:
        try:
            received_at = datetime.fromisoformat(str(raw_time))
        except ValueError as err:
            raise RecordError(f"bad received_at {raw_time!r}: not ISO 8601") from err
        if received_at.tzinfo is None:
            received_at = received_at.replace(tzinfo=zone)
    return record, received_at


def _engine_settings(engine: str) -> dict[str, Any]:
    if engine == "offline":
        return {"engine": "offline"}
    missing = [name for name in (ENV_BASE_URL, ENV_MODEL) if not os.environ.get(name)]
    if missing:
        raise click.UsageError(
            f"--engine model needs the environment variables {', '.join(missing)}"
        )
    return {
        "engine": "model",
        "base_url": os.environ[ENV_BASE_URL],
        "model": os.environ[ENV_MODEL],
        "api_key": os.environ.get(ENV_API_KEY, ""),
    }


@click.command("classify")
@click.argument(
    "file",
    type=click.Path(exists=True, dir_okay=False, readable=True, allow_dash=True),
)
@click.option(
    "--engine",
    type=click.Choice(["offline", "model"]),
    default="offline",
    show_default=True,
    help="Rules on this machine, or the chat model from OTKLIK_LLM_* variables.",
)
@click.option(
    "--eval",
    "do_eval",
    is_flag=True,
    help="Print precision, recall and accuracy against the labels in FILE.",
)
@click.option(
    "--tz", default="Europe/Moscow", show_default=True, help="Portal time zone."
)
def classify_command(file: str, engine: str, do_eval: bool, tz: str) -> None:
    """Tag each lead in FILE (JSONL with id, text and optional received_at)."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise click.UsageError(f"unknown time zone {tz!r}") from err
    tagger = build_engine(_engine_settings(engine))

    try:
        if file == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(file, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        click.echo(f"error: cannot read {file}: {err}", err=True)
        sys.exit(2)

    failed = 0
    gold: list[dict[str, Any]] = []
    predicted: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record, received_at = parse_record(line, zone)
            if do_eval and not isinstance(record.get("tags"), list):
                raise RecordError("no 'tags' label to evaluate against")
        except RecordError as err:
            failed += 1
            click.echo(f"line {number}: {err}; skipped", err=True)
            continue

        result = tagger.classify(record["text"], received_at, tz)
        output = {"id": record["id"], **result.to_json()}
        if do_eval:
            gold.append(record)
            predicted.append(output)
        else:
            click.echo(json.dumps(output, ensure_ascii=False))

    if do_eval:
        if not gold:
            click.echo("error: no labelled records to evaluate", err=True)
            sys.exit(1 if failed else 2)
        click.echo(format_table(evaluate(gold, predicted)))
    if failed:
        click.echo(f"{failed} line(s) failed", err=True)
        sys.exit(1)
