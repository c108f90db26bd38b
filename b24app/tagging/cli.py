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
from .types import INTENTS

logger = logging.getLogger(__name__)

ENV_BASE_URL = "OTKLIK_LLM_BASE_URL"
ENV_MODEL = "OTKLIK_LLM_MODEL"
ENV_API_KEY = "OTKLIK_LLM_API_KEY"
# Exit codes: 0 all lines classified, 1 some lines skipped, 2 nothing to do
# (unreadable file, bad options, no labelled records for --eval).
EXIT_SKIPPED = 1
EXIT_UNUSABLE = 2


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


def check_labels(record: dict[str, Any], seen: dict[str, int], number: int) -> None:
    """Reject a labelled record that would distort the scores: an unknown tag
    is scored as a miss of every tag, and a repeated id is counted twice."""
    tags = record.get("tags")
    if not isinstance(tags, list) or not tags:
        raise RecordError("no 'tags' label to evaluate against")
    unknown = sorted({str(t) for t in tags} - set(INTENTS))
    if unknown:
        raise RecordError(f"unknown tag(s) {', '.join(map(repr, unknown))} in labels")
    key = str(record["id"])
    if key in seen:
        raise RecordError(f"duplicate id {key!r} (first on line {seen[key]})")
    seen[key] = number


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
    help=(
        "Print precision, recall and accuracy against the labels in FILE. "
        "Macro-F1 averages the tags that the labels use; others show n/a."
    ),
)
@click.option(
    "--tz", default="Europe/Moscow", show_default=True, help="Portal time zone."
)
def classify_command(file: str, engine: str, do_eval: bool, tz: str) -> None:
    """Tag each lead in FILE (JSONL with id, text and optional received_at).

    Without received_at, relative dates ("завтра") count from the current
    time, and a warning says so once.
    """
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
        sys.exit(EXIT_UNUSABLE)

    failed = 0
    clock_warned = False
    seen_ids: dict[str, int] = {}
    gold: list[dict[str, Any]] = []
    predicted: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record, received_at = parse_record(line, zone)
            if do_eval:
                check_labels(record, seen_ids, number)
        except RecordError as err:
            failed += 1
            click.echo(f"line {number}: {err}; skipped", err=True)
            continue
        if record.get("received_at") in (None, "") and not clock_warned:
            clock_warned = True
            click.echo(
                f"warning: line {number} and any later line without received_at "
                "are resolved against the current time",
                err=True,
            )

        result = tagger.classify(record["text"], received_at, tz)
        output = {"id": record["id"], **result.to_json()}
        if do_eval:
            gold.append(record)
            predicted.append(output)
        else:
            click.echo(json.dumps(output, ensure_ascii=False))

    if do_eval:
        if not gold:
            if failed:
                click.echo(f"{failed} line(s) failed", err=True)
            click.echo("error: no labelled records to evaluate", err=True)
            sys.exit(EXIT_UNUSABLE)
        click.echo(format_table(evaluate(gold, predicted)))
    elif not failed and not predicted and not any(line.strip() for line in lines):
        click.echo(f"warning: {file} has no records", err=True)
    if failed:
        click.echo(f"{failed} line(s) failed", err=True)
        sys.exit(EXIT_SKIPPED)
