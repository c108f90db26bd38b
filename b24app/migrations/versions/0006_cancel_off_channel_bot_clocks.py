"""Cancel open bot clocks of leads from channels without a bot

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 21:45:00

Written by hand, data only. A lead gets a bot clock only when its channel is
one of the portal's bot channels (``policy.bot_channels`` in the portal
settings, ``["openline"]`` when the portal saved no policy or the policy has
no such key). Clocks created before that rule gave web-form and e-mail leads
a bot clock that no bot could meet, so they show a bot breach.

Open bot clocks (no stop time, state "running" or "breached") of leads whose
channel is empty or not a bot channel of their portal become "cancelled" with
no stop time, no breach time and no next check, the state that a deleted or
spam lead's clock gets. Bot clocks with a stop time (met, or breached by a
late bot reply), cancelled clocks, human clocks and escalations stay as they
are. A portal whose stored ``bot_channels`` is not a list of strings is left
alone and logged.

The rule is copied here rather than imported, so that later changes of the
app's models or policy code do not change what this revision does. Running
it again changes nothing. The downgrade is a no-op, because the earlier state
of each clock is not kept.
"""

import json
import logging

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

logger = logging.getLogger(__name__)

DEFAULT_BOT_CHANNELS = ("openline",)
OPEN_STATES = ("running", "breached")
PORTALS_PER_STATEMENT = 500

portals = sa.table(
    "portals",
    sa.column("id", sa.Integer),
    sa.column("member_id", sa.String),
    sa.column("settings", sa.JSON),
)
leads = sa.table("leads", sa.column("id", sa.Integer), sa.column("channel", sa.String))
clocks = sa.table(
    "sla_clocks",
    sa.column("id", sa.Integer),
    sa.column("portal_id", sa.Integer),
    sa.column("lead_id", sa.Integer),
    sa.column("tier", sa.String),
    sa.column("state", sa.String),
    sa.column("stopped_at", sa.DateTime),
    sa.column("breached_at", sa.DateTime),
    sa.column("next_check_at", sa.DateTime),
)


def bot_channels(settings: object) -> tuple[str, ...] | None:
    """Return the portal's bot channels from its settings, or None if invalid."""
    if isinstance(settings, str):
        try:
            settings = json.loads(settings)
        except ValueError:
            return None
    if not settings:
        return DEFAULT_BOT_CHANNELS
    if not isinstance(settings, dict):
        return None

    # An empty policy falls back to the segment's preset, and every preset
    # uses the default channels.
    policy = settings.get("policy")
    if not policy:
        return DEFAULT_BOT_CHANNELS
    if not isinstance(policy, dict):
        return None
    if "bot_channels" not in policy:
        return DEFAULT_BOT_CHANNELS

    channels = policy["bot_channels"]
    if not isinstance(channels, list):
        return None
    if not all(isinstance(channel, str) for channel in channels):
        return None
    return tuple(sorted(set(channels)))


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(portals.c.id, portals.c.member_id, portals.c.settings)
    ).all()

    by_channels: dict[tuple[str, ...], list[int]] = {}
    for portal_id, member_id, settings in rows:
        channels = bot_channels(settings)
        if channels is None:
            logger.warning(
                "bot channels unreadable, bot clocks left as they are",
                extra={"member_id": member_id, "portal_id": portal_id},
            )
            continue
        by_channels.setdefault(channels, []).append(portal_id)

    cancelled = 0
    for channels, portal_ids in by_channels.items():
        for start in range(0, len(portal_ids), PORTALS_PER_STATEMENT):
            chunk = portal_ids[start : start + PORTALS_PER_STATEMENT]
            cancelled += connection.execute(_cancel_statement(channels, chunk)).rowcount
    logger.info(
        "open bot clocks of leads outside the bot channels cancelled",
        extra={"count": cancelled, "portals": len(rows)},
    )


def _cancel_statement(channels: tuple[str, ...], portal_ids: list[int]) -> sa.Update:
    off_channel = sa.or_(leads.c.channel.is_(None), leads.c.channel == "")
    if channels:
        off_channel = sa.or_(off_channel, leads.c.channel.not_in(channels))
    else:
        # No bot channels at all: every bot clock of the portal is off.
        off_channel = sa.true()

    lead_off_channel = (
        sa.exists()
        .where(leads.c.id == clocks.c.lead_id)
        .where(off_channel)
        .correlate(clocks)
    )
    return (
        sa.update(clocks)
        .where(
            clocks.c.tier == "bot",
            clocks.c.stopped_at.is_(None),
            clocks.c.state.in_(OPEN_STATES),
            clocks.c.portal_id.in_(portal_ids),
            lead_off_channel,
        )
        .values(state="cancelled", breached_at=None, next_check_at=None)
    )


def downgrade() -> None:
    # No-op: the clocks' earlier states are not kept, and a cancelled bot
    # clock of a lead outside the bot channels is the state the app now makes.
    pass
