"""The ``b24app`` command line: worker, database, demo and integrator tools."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from b24app.config import ConfigError, load_config
from b24app.logs import configure_logging
from b24app.tagging.cli import classify_command


class DatabaseNotInitialised(click.ClickException):
    """The database has no schema yet; exits with code 1 and one line."""

    def __init__(self, url: str) -> None:
        super().__init__(f"database not initialised at {url}: run `b24app db upgrade`")


def _services(*, migrated: bool = True):
    """Build the services; with ``migrated``, reject a database with no schema.

    A missing SQLite file is reported before anything touches the disk:
    building the engine creates the file's folder, and so does loading a
    development config with no OTKLIK_SECRET_KEY (it stores a secret in the
    instance folder). So the URL is first read with a stand-in secret.
    """
    from b24app.services import Services

    try:
        if migrated:
            url = load_config({"SECRET_KEY": "unused"})["DATABASE_URL"]
            if _sqlite_file_missing(url):
                raise DatabaseNotInitialised(_safe_url(url))
        config = load_config()
    except ConfigError as err:
        raise click.ClickException(str(err)) from err
    configure_logging(config["LOG_LEVEL"])

    url = config["DATABASE_URL"]
    services = Services(config)
    if migrated and not _has_schema(services):
        raise DatabaseNotInitialised(_safe_url(url))
    return services


def _sqlite_file_missing(url: str) -> bool:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    path = parsed.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return False
    return not Path(path).exists()


def _has_schema(services) -> bool:
    """Return whether the migrations created the ``portals`` table."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import OperationalError

    try:
        return inspect(services.db.engine).has_table("portals")
    except OperationalError as err:
        raise click.ClickException(
            f"database at {_safe_url(services.db.url)} cannot be opened: {err.orig}"
        ) from err


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@click.group()
def main() -> None:
    """Otklik: lead tagging, first-response SLA and KPIs for Bitrix24."""


@main.command()
def worker() -> None:
    """Process stored events and run periodic jobs until interrupted."""
    from b24app.worker import Worker

    services = _services(migrated=False)
    services.db.upgrade()
    Worker(services).run_forever()


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to OTKLIK_DATABASE_URL."""
    services = _services(migrated=False)
    services.db.upgrade()
    click.echo(
        f"database at {services.db.engine.url.render_as_string(hide_password=True)} "
        "is up to date"
    )


@main.group()
def sla() -> None:
    """SLA tools for integrators."""


@sla.command("due")
@click.option("--portal", "member_id", required=True, help="The portal's member_id.")
@click.option(
    "--created",
    required=True,
    help="When the lead was created, ISO 8601 with an offset.",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    help="An intent tag (booking, complaint, ...) or urgent; repeatable.",
)
def sla_due(member_id: str, created: str, tags: tuple[str, ...]) -> None:
    """Print the due time of each tier for the portal's settings."""
    from sqlalchemy import select

    from b24app import portal_settings
    from b24app.models import Portal
    from b24app.sla import settings as sla_settings
    from b24app.sla.policy import URGENT_TAG, compute_due, ladder_times
    from b24app.tagging.types import INTENTS

    known = (*INTENTS, URGENT_TAG)
    tags = tuple(tag.strip().lower() for tag in tags)
    unknown = [tag for tag in tags if tag not in known]
    if unknown:
        raise click.BadParameter(
            f"unknown tag {unknown[0]!r}; use one of {', '.join(known)}",
            param_hint="--tag",
        )

    try:
        created_at = datetime.fromisoformat(created)
    except ValueError as err:
        raise click.BadParameter(
            f"not an ISO 8601 time: {created!r}", param_hint="--created"
        ) from err
    if created_at.tzinfo is None:
        raise click.BadParameter(
            "add a UTC offset, e.g. 2026-03-14T20:59:00+03:00", param_hint="--created"
        )

    services = _services()
    with services.db.session() as session:
        portal = session.scalar(select(Portal).where(Portal.member_id == member_id))
    if portal is None:
        raise click.ClickException(
            f"no portal with member_id {member_id!r} is installed"
        )

    calendar = portal_settings.calendar(portal)
    policy = portal_settings.policy(portal)
    intents = [t for t in tags if t != "urgent"]
    due = compute_due(created_at, intents, "urgent" in tags, policy, calendar)
    if due is None:
        click.echo(json.dumps({"clock": None, "reason": "spam leads get no clock"}))
        return

    def local(moment: datetime) -> str:
        return moment.astimezone(calendar.tz).isoformat()

    click.echo(
        json.dumps(
            {
                "timezone": calendar.tz_name,
                "created_at": local(due.created_at),
                "bot_due": local(due.bot_due),
                "bot_channels": list(policy.bot_channels),
                "human_starts_at": local(due.human_starts_at),
                "human_due": local(due.human_due),
                "human_minutes": due.human_seconds / 60,
                "rule": due.rule,
                "text": sla_settings.preview(portal, created_at, list(tags))["text"],
                "ladder": [
                    {"level": level.code, "action": level.action, "at": local(at)}
                    for level, at in ladder_times(due, policy, calendar)
                ],
            },
            ensure_ascii=False,
            indent=2,
        )
    )


@main.command()
@click.option(
    "--leads",
    type=int,
    default=None,
    help="Create this many leads, then stop creating (default: keep going).",
)
@click.option(
    "--exit-after",
    is_flag=True,
    help="Exit when the leads are processed and print a JSON summary.",
)
@click.option(
    "--port",
    type=int,
    default=5000,
    show_default=True,
    help="Loopback port of the app.",
)
@click.option(
    "--rate", type=float, default=6.0, show_default=True, help="New leads per minute."
)
@click.option(
    "--human-seconds",
    type=int,
    default=90,
    show_default=True,
    help="First-response target of the demo portal, in seconds.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Scenario seed.")
def demo(
    leads: int | None,
    exit_after: bool,
    port: int,
    rate: float,
    human_seconds: int,
    seed: int,
) -> None:
    """Run the emulated portal, the app and the worker with leads flowing."""
    from b24app.demo import DemoOptions, run_demo

    if exit_after and not leads:
        raise click.BadParameter(
            "--exit-after needs --leads N", param_hint="--exit-after"
        )
    summary = run_demo(
        DemoOptions(
            leads=leads,
            exit_after=exit_after,
            port=port,
            rate_per_minute=rate,
            human_seconds=human_seconds,
            seed=seed,
        )
    )
    if summary is not None:
        click.echo(json.dumps(summary, ensure_ascii=False))


main.add_command(classify_command, "classify")


if __name__ == "__main__":
    sys.exit(main())
