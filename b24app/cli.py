"""The ``b24app`` command line: worker, database, demo and integrator tools."""

from __future__ import annotations

import json
import sys
from datetime import datetime

import click

from b24app.config import ConfigError, load_config
from b24app.logs import configure_logging
from b24app.tagging.cli import classify_command


def _services():
    from b24app.services import Services

    try:
        config = load_config()
    except ConfigError as err:
        raise click.ClickException(str(err)) from err
    configure_logging(config["LOG_LEVEL"])
    return Services(config)


@click.group()
def main() -> None:
    """Otklik: lead tagging, first-response SLA and KPIs for Bitrix24."""


@main.command()
def worker() -> None:
    """Process stored events and run periodic jobs until interrupted."""
    from b24app.worker import Worker

    services = _services()
    services.db.upgrade()
    Worker(services).run_forever()


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to OTKLIK_DATABASE_URL."""
    services = _services()
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
    from b24app.sla.policy import compute_due, ladder_times

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
