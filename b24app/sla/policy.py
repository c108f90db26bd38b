"""First-response SLA targets of a portal and the due times of one lead.

A lead has two clocks. The bot clock counts wall-clock seconds from creation,
because the bot replies at any hour. The human clock counts business seconds of
a ``BusinessCalendar`` from the first opening at or after creation. Intent tags
can replace the human target, and an escalation ladder fires actions at
fractions (or multiples) of that target.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from b24app.sla.calendar import BusinessCalendar

logger = logging.getLogger(__name__)

ACTIONS = ("warn_responsible", "task_senior", "notify_owner")
"""Ladder actions: warn the responsible user, task a senior, notify the owner."""

SPAM_TAG = "spam"
URGENT_TAG = "urgent"
DEFAULT_RULE = "default"

CAPPED_INTENTS = (URGENT_TAG, "complaint")
"""Intents whose target never exceeds the default one: an urgent lead or a
complaint must not wait longer than an ordinary lead."""

BOT_CHANNELS = ("openline",)
"""Channels where a bot can reply, by default: the open-line chats. A web form,
an e-mail or a call gets no automatic reply, so such leads get no bot clock."""

MAX_BOT_SECONDS = 3600
MAX_HUMAN_SECONDS = 30 * 86400
MAX_AT_RATIO = 10.0

_CODE_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")
_POLICY_FIELDS = (
    "bot_seconds",
    "human_seconds",
    "intent_human_seconds",
    "spam_has_clock",
    "warn_ratio",
    "ladder",
    "fresh_clock_on_reassign",
    "bot_channels",
)
_LEVEL_FIELDS = ("code", "at_ratio", "action")


class PolicyError(ValueError):
    """Invalid SLA policy settings."""


@dataclass(frozen=True)
class LadderLevel:
    """One escalation step that fires after ``at_ratio`` x the human target."""

    code: str
    at_ratio: float
    action: str

    def __post_init__(self) -> None:
        _check_level_fields("LadderLevel", self.code, self.at_ratio, self.action)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "at_ratio": self.at_ratio, "action": self.action}


def _default_intents() -> dict[str, int]:
    return {"urgent": 10 * 60, "complaint": 15 * 60, "cancel": 60 * 60}


def _default_ladder() -> tuple[LadderLevel, ...]:
    return (
        LadderLevel("warn", 0.8, "warn_responsible"),
        LadderLevel("task", 1.0, "task_senior"),
        LadderLevel("owner", 2.0, "notify_owner"),
    )


@dataclass(frozen=True)
class SlaPolicy:
    """First-response targets of one portal.

    ``intent_human_seconds`` maps an intent tag to a human target in business
    seconds. A matching intent replaces ``human_seconds``, and when several
    match, the shortest target wins. The targets of ``CAPPED_INTENTS`` are
    capped at ``human_seconds`` (see ``effective_intent_seconds``).
    ``bot_channels`` lists the lead channels (``leadtext.channel`` names) whose
    leads get a bot clock. ``warn_ratio`` is the share of the human
    target after which a clock counts as at risk in reports and the UI, while
    ``ladder`` decides which actions fire. ``fresh_clock_on_reassign`` makes the
    clock service restart the human clock when a lead changes hands.

    Instances are immutable: mappings become read-only and the ladder a tuple.
    """

    bot_seconds: int = 30
    human_seconds: int = 30 * 60
    intent_human_seconds: Mapping[str, int] = field(default_factory=_default_intents)
    spam_has_clock: bool = False
    warn_ratio: float = 0.8
    ladder: Sequence[LadderLevel] = field(default_factory=_default_ladder)
    fresh_clock_on_reassign: bool = False
    bot_channels: Sequence[str] = BOT_CHANNELS

    def __post_init__(self) -> None:
        _check_seconds("bot_seconds", self.bot_seconds, MAX_BOT_SECONDS)
        _check_seconds("human_seconds", self.human_seconds, MAX_HUMAN_SECONDS)
        intents = _check_intents(self.intent_human_seconds)
        _check_bool("spam_has_clock", self.spam_has_clock)
        _check_ratio("warn_ratio", self.warn_ratio, maximum=1.0, inclusive=False)
        ladder = _check_ladder(self.ladder)
        _check_bool("fresh_clock_on_reassign", self.fresh_clock_on_reassign)
        channels = _check_channels(self.bot_channels)

        object.__setattr__(self, "intent_human_seconds", MappingProxyType(intents))
        object.__setattr__(self, "ladder", ladder)
        object.__setattr__(self, "bot_channels", channels)

    def __hash__(self) -> int:
        intents = tuple(sorted(self.intent_human_seconds.items()))
        return hash(
            (
                self.bot_seconds,
                self.human_seconds,
                intents,
                self.spam_has_clock,
                self.warn_ratio,
                tuple(self.ladder),
                self.fresh_clock_on_reassign,
                self.bot_channels,
            )
        )

    def effective_intent_seconds(self) -> dict[str, int]:
        """Return the target of each intent as it applies to leads.

        The targets of ``CAPPED_INTENTS`` are capped at ``human_seconds``, so
        lowering the default target also lowers the urgent one. Other intents
        (a cancellation, say) may wait longer than the default.
        """
        return {
            code: min(seconds, self.human_seconds)
            if code in CAPPED_INTENTS
            else seconds
            for code, seconds in self.intent_human_seconds.items()
        }

    def has_bot_clock(self, channel: str | None) -> bool:
        """Return whether a lead from ``channel`` gets a bot clock."""
        return bool(channel) and channel in self.bot_channels

    def human_target(self, tags: Iterable[str], urgent: bool) -> tuple[int, str]:
        """Return the human target in seconds and the rule that chose it.

        The rule is the intent tag whose target applies, or ``"default"``. The
        ``urgent`` flag counts as the tag "urgent". Tags are compared in lower
        case. Ties between intents go to the alphabetically first tag. Targets
        are the capped ones of ``effective_intent_seconds``.
        """
        codes = _normalize_tags(tags)
        if urgent:
            codes.add(URGENT_TAG)

        targets = self.effective_intent_seconds()
        candidates = [(targets[code], code) for code in codes if code in targets]
        if not candidates:
            return self.human_seconds, DEFAULT_RULE
        return min(candidates)

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready settings that ``from_dict`` reads back."""
        return {
            "bot_seconds": self.bot_seconds,
            "human_seconds": self.human_seconds,
            "intent_human_seconds": dict(sorted(self.intent_human_seconds.items())),
            "spam_has_clock": self.spam_has_clock,
            "warn_ratio": self.warn_ratio,
            "ladder": [level.to_dict() for level in self.ladder],
            "fresh_clock_on_reassign": self.fresh_clock_on_reassign,
            "bot_channels": sorted(self.bot_channels),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlaPolicy:
        """Build a policy from ``to_dict`` output.

        Missing fields get the defaults. Raises ``PolicyError`` that names the
        invalid field and value.
        """
        if not isinstance(data, Mapping):
            raise PolicyError(
                f"SLA settings: expected a JSON object, got {type(data).__name__}"
            )
        unknown = sorted(str(key) for key in data if key not in _POLICY_FIELDS)
        if unknown:
            raise PolicyError(
                f"SLA settings: unknown field {unknown[0]!r}; "
                f"expected {', '.join(_POLICY_FIELDS)}"
            )

        values = dict(data)
        if "ladder" in values:
            values["ladder"] = _parse_ladder(values["ladder"])
        return cls(**values)


@dataclass(frozen=True)
class DueTimes:
    """Due times of one lead's first response, as UTC-aware datetimes."""

    created_at: datetime
    bot_due: datetime
    human_starts_at: datetime
    human_due: datetime
    human_seconds: int
    rule: str
    """Intent tag that chose ``human_seconds``, or ``"default"``."""


def compute_due(
    created_at: datetime,
    tags: Iterable[str],
    urgent: bool,
    policy: SlaPolicy,
    calendar: BusinessCalendar,
) -> DueTimes | None:
    """Compute both first-response due times of a new lead.

    Returns None for a lead tagged "spam" unless ``policy.spam_has_clock`` is
    set. The spam tag wins over every other tag and over ``urgent``.
    """
    if not isinstance(created_at, datetime):
        raise TypeError(f"created_at: expected a datetime, got {created_at!r}")
    if created_at.tzinfo is None or created_at.utcoffset() is None:
        raise ValueError(
            f"created_at: naive datetime {created_at.isoformat()} has no time zone; "
            f"pass an aware datetime"
        )

    codes = _normalize_tags(tags)
    if SPAM_TAG in codes and not policy.spam_has_clock:
        logger.debug("lead tagged %r gets no SLA clock", SPAM_TAG)
        return None

    human_seconds, rule = policy.human_target(codes, urgent)

    # The addition runs in UTC because adding a timedelta to a zoned datetime
    # keeps the wall time and is off by the DST shift.
    bot_due_utc = created_at.astimezone(UTC) + timedelta(seconds=policy.bot_seconds)
    human_starts_at = calendar.next_opening(created_at)
    human_due = calendar.add_business_seconds(human_starts_at, human_seconds)

    return DueTimes(
        created_at=created_at.astimezone(UTC),
        bot_due=bot_due_utc,
        human_starts_at=human_starts_at,
        human_due=human_due,
        human_seconds=human_seconds,
        rule=rule,
    )


def ladder_times(
    due: DueTimes, policy: SlaPolicy, calendar: BusinessCalendar
) -> list[tuple[LadderLevel, datetime]]:
    """Return each ladder level with its fire time, earliest first.

    A level fires after ``at_ratio`` x ``due.human_seconds`` business seconds
    counted from ``due.human_starts_at``, so a level at ratio 1.0 fires exactly
    at ``due.human_due``.
    """
    levels = sorted(policy.ladder, key=lambda level: level.at_ratio)
    return [
        (
            level,
            calendar.add_business_seconds(
                due.human_starts_at, level.at_ratio * due.human_seconds
            ),
        )
        for level in levels
    ]


# Validation


def _normalize_tags(tags: Iterable[str]) -> set[str]:
    if isinstance(tags, str):
        raise TypeError(f"tags: expected a list of tag codes, got the string {tags!r}")
    return {tag.strip().lower() for tag in tags if isinstance(tag, str) and tag.strip()}


def _check_seconds(name: str, value: object, maximum: int) -> None:
    valid = (
        isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= maximum
    )
    if not valid:
        raise PolicyError(
            f"{name}: must be a whole number of seconds from 1 to {maximum}, "
            f"got {value!r}"
        )


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise PolicyError(f"{name}: must be true or false, got {value!r}")


def _check_ratio(name: str, value: object, *, maximum: float, inclusive: bool) -> None:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    valid = is_number and math.isfinite(value) and value > 0
    if valid:
        valid = value <= maximum if inclusive else value < maximum
    if not valid:
        upper = f"<= {maximum:g}" if inclusive else f"< {maximum:g}"
        raise PolicyError(f"{name}: must be a number > 0 and {upper}, got {value!r}")


def _check_code(name: str, value: object) -> None:
    if not isinstance(value, str) or not _CODE_PATTERN.fullmatch(value):
        raise PolicyError(
            f"{name}: must be a lower-case code of letters, digits and '_' that "
            f"starts with a letter, got {value!r}"
        )


def _check_channels(channels: object) -> tuple[str, ...]:
    if isinstance(channels, str | bytes) or not isinstance(channels, Sequence):
        raise PolicyError(
            f"bot_channels: expected a list of channel names, got {channels!r}"
        )
    for index, channel in enumerate(channels):
        _check_code(f"bot_channels[{index}]", channel)
    return tuple(sorted(set(channels)))


def _check_intents(intents: object) -> dict[str, int]:
    if not isinstance(intents, Mapping):
        raise PolicyError(
            f"intent_human_seconds: expected an object of intent tag to seconds, "
            f"got {intents!r}"
        )

    result = {}
    for code, seconds in intents.items():
        _check_code(f"intent_human_seconds key {code!r}", code)
        if code == DEFAULT_RULE:
            raise PolicyError(
                "intent_human_seconds: 'default' is reserved; set human_seconds instead"
            )
        _check_seconds(f"intent_human_seconds[{code!r}]", seconds, MAX_HUMAN_SECONDS)
        result[code] = seconds
    return result


def _check_level_fields(
    prefix: str, code: object, at_ratio: object, action: object
) -> None:
    _check_code(f"{prefix}.code", code)
    _check_ratio(f"{prefix}.at_ratio", at_ratio, maximum=MAX_AT_RATIO, inclusive=True)
    if action not in ACTIONS:
        raise PolicyError(
            f"{prefix}.action: unknown action {action!r}; expected one of "
            f"{', '.join(ACTIONS)}"
        )


def _check_ladder(ladder: object) -> tuple[LadderLevel, ...]:
    if isinstance(ladder, str | bytes) or not isinstance(ladder, Sequence):
        raise PolicyError(f"ladder: expected a list of levels, got {ladder!r}")

    seen: set[str] = set()
    for index, level in enumerate(ladder):
        if not isinstance(level, LadderLevel):
            raise PolicyError(f"ladder[{index}]: expected a LadderLevel, got {level!r}")
        if level.code in seen:
            raise PolicyError(
                f"ladder[{index}].code: duplicate level code {level.code!r}"
            )
        seen.add(level.code)
    return tuple(ladder)


def _parse_ladder(data: object) -> list[LadderLevel]:
    """Convert JSON ladder levels, naming the list index in every error."""
    if isinstance(data, str | bytes) or not isinstance(data, Sequence):
        raise PolicyError(f"ladder: expected a list of levels, got {data!r}")

    levels = []
    for index, item in enumerate(data):
        prefix = f"ladder[{index}]"
        if not isinstance(item, Mapping):
            raise PolicyError(
                f"{prefix}: expected an object with code, at_ratio and action, "
                f"got {item!r}"
            )
        missing = [name for name in _LEVEL_FIELDS if name not in item]
        if missing:
            raise PolicyError(f"{prefix}: missing field {missing[0]!r}")
        unknown = sorted(str(key) for key in item if key not in _LEVEL_FIELDS)
        if unknown:
            raise PolicyError(f"{prefix}: unknown field {unknown[0]!r}")

        _check_level_fields(prefix, item["code"], item["at_ratio"], item["action"])
        levels.append(LadderLevel(item["code"], item["at_ratio"], item["action"]))
    return levels


# Defined last because building a policy runs the checks above.
PRESETS: Mapping[str, SlaPolicy] = MappingProxyType(
    {
        "salon": SlaPolicy(),
        "clinic": SlaPolicy(
            human_seconds=15 * 60,
            intent_human_seconds={
                "urgent": 5 * 60,
                "complaint": 10 * 60,
                "cancel": 30 * 60,
            },
        ),
        "fitness": SlaPolicy(),
    }
)
"""Starting policies by business type. Salon and fitness use the defaults."""
