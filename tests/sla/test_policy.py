"""Tests of SLA targets, due times and the escalation ladder."""

import dataclasses
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from b24app.sla.calendar import BusinessCalendar
from b24app.sla.policy import (
    PRESETS,
    DueTimes,
    LadderLevel,
    PolicyError,
    SlaPolicy,
    compute_due,
    ladder_times,
)

MSK = ZoneInfo("Europe/Moscow")
BER = ZoneInfo("Europe/Berlin")

EVERY_DAY = BusinessCalendar()
MON_FRI = BusinessCalendar(weekly={day: [(time(9), time(18))] for day in range(5)})


def msk(year, month, day, hour=0, minute=0, second=0):
    return datetime(year, month, day, hour, minute, second, tzinfo=MSK)


# Human target selection

TARGET_CASES = [
    pytest.param([], False, 1800, "default", id="no-tags"),
    pytest.param(["pricing"], False, 1800, "default", id="unknown-tag"),
    pytest.param([], True, 600, "urgent", id="urgent-flag"),
    pytest.param(["urgent"], False, 600, "urgent", id="urgent-tag"),
    pytest.param(["complaint"], False, 900, "complaint", id="complaint"),
    pytest.param(["cancel"], False, 3600, "cancel", id="cancel-looser-than-default"),
    pytest.param(["cancel", "complaint"], False, 900, "complaint", id="strictest-wins"),
    pytest.param(["complaint"], True, 600, "urgent", id="urgent-beats-complaint"),
    pytest.param([" Complaint "], False, 900, "complaint", id="tags-normalized"),
]


@pytest.mark.parametrize(("tags", "urgent", "seconds", "rule"), TARGET_CASES)
def test_human_target_cases(tags, urgent, seconds, rule):
    target = SlaPolicy().human_target(tags, urgent)

    assert target == (seconds, rule)


def test_human_target_tie_prefers_first_code():
    policy = SlaPolicy(intent_human_seconds={"refund": 900, "complaint": 900})

    assert policy.human_target(["refund", "complaint"], False) == (900, "complaint")


def test_human_target_rejects_plain_string():
    with pytest.raises(TypeError, match="expected a list of tag codes"):
        SlaPolicy().human_target("complaint", False)


# Due times


def test_compute_due_open_hours():
    due = compute_due(msk(2026, 4, 15, 10), [], False, SlaPolicy(), EVERY_DAY)

    assert due == DueTimes(
        created_at=msk(2026, 4, 15, 10),
        bot_due=msk(2026, 4, 15, 10, 0, 30),
        human_starts_at=msk(2026, 4, 15, 10),
        human_due=msk(2026, 4, 15, 10, 30),
        human_seconds=1800,
        rule="default",
    )


def test_compute_due_night_lead():
    due = compute_due(msk(2026, 4, 14, 23, 30), [], False, SlaPolicy(), EVERY_DAY)

    assert due.bot_due == msk(2026, 4, 14, 23, 30, 30)
    assert due.human_starts_at == msk(2026, 4, 15, 9)
    assert due.human_due == msk(2026, 4, 15, 9, 30)


def test_compute_due_complaint_on_holiday():
    due = compute_due(msk(2026, 5, 1, 12), ["complaint"], False, SlaPolicy(), MON_FRI)

    assert due.human_starts_at == msk(2026, 5, 4, 9)
    assert due.human_due == msk(2026, 5, 4, 9, 15)
    assert due.rule == "complaint"


def test_compute_due_results_are_utc():
    due = compute_due(msk(2026, 4, 15, 10), [], False, SlaPolicy(), EVERY_DAY)

    assert due.created_at.tzinfo is UTC
    assert due.bot_due.tzinfo is UTC
    assert due.human_starts_at.tzinfo is UTC
    assert due.human_due.tzinfo is UTC


def test_compute_due_bot_clock_elapsed_over_dst():
    calendar = BusinessCalendar(tz="Europe/Berlin", country=None)
    created = datetime(2025, 3, 30, 1, 59, 50, tzinfo=BER)

    due = compute_due(created, [], False, SlaPolicy(), calendar)

    assert due.bot_due == datetime(2025, 3, 30, 3, 0, 20, tzinfo=BER)


def test_compute_due_spam_has_no_clock():
    due = compute_due(msk(2026, 4, 15, 10), ["spam"], False, SlaPolicy(), EVERY_DAY)

    assert due is None


def test_compute_due_spam_wins_over_urgent():
    due = compute_due(
        msk(2026, 4, 15, 10), ["spam", "complaint"], True, SlaPolicy(), EVERY_DAY
    )

    assert due is None


def test_compute_due_spam_clock_when_enabled():
    policy = SlaPolicy(spam_has_clock=True)

    due = compute_due(msk(2026, 4, 15, 10), ["spam"], False, policy, EVERY_DAY)

    assert due.human_due == msk(2026, 4, 15, 10, 30)
    assert due.rule == "default"


def test_compute_due_clinic_preset():
    due = compute_due(msk(2026, 4, 15, 20, 50), [], False, PRESETS["clinic"], EVERY_DAY)

    assert due.human_seconds == 900
    assert due.human_due == msk(2026, 4, 16, 9, 5)


def test_compute_due_rejects_naive_created():
    with pytest.raises(ValueError, match="created_at: naive datetime"):
        compute_due(datetime(2026, 4, 15, 10), [], False, SlaPolicy(), EVERY_DAY)


# Ladder


def test_ladder_times_default_levels():
    due = compute_due(msk(2026, 4, 15, 20, 40), [], False, SlaPolicy(), EVERY_DAY)

    fired = [
        (level.code, fire_at)
        for level, fire_at in ladder_times(due, SlaPolicy(), EVERY_DAY)
    ]

    assert fired == [
        ("warn", msk(2026, 4, 16, 9, 4)),
        ("task", msk(2026, 4, 16, 9, 10)),
        ("owner", msk(2026, 4, 16, 9, 40)),
    ]


def test_ladder_times_ratio_one_equals_due():
    due = compute_due(
        msk(2026, 12, 31, 20, 59), ["complaint"], False, SlaPolicy(), MON_FRI
    )

    fire_times = dict(
        (level.code, fire_at)
        for level, fire_at in ladder_times(due, SlaPolicy(), MON_FRI)
    )

    assert fire_times["task"] == due.human_due


def test_ladder_times_sorted_by_ratio():
    policy = SlaPolicy(
        ladder=[
            LadderLevel("owner", 3.0, "notify_owner"),
            LadderLevel("warn", 0.5, "warn_responsible"),
        ]
    )
    due = compute_due(msk(2026, 4, 15, 10), [], False, policy, EVERY_DAY)

    codes = [level.code for level, _ in ladder_times(due, policy, EVERY_DAY)]

    assert codes == ["warn", "owner"]


def test_ladder_times_empty_ladder():
    policy = SlaPolicy(ladder=[])
    due = compute_due(msk(2026, 4, 15, 10), [], False, policy, EVERY_DAY)

    assert ladder_times(due, policy, EVERY_DAY) == []


# Presets and storage


def test_presets_targets():
    assert PRESETS["salon"].human_seconds == 1800
    assert PRESETS["fitness"].human_seconds == 1800
    assert PRESETS["clinic"].human_seconds == 900


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_bot_seconds(name):
    assert PRESETS[name].bot_seconds == 30


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_intents_stricter_than_default(name):
    preset = PRESETS[name]

    assert preset.intent_human_seconds["urgent"] < preset.human_seconds
    assert preset.intent_human_seconds["complaint"] < preset.human_seconds


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_to_dict_round_trip(name):
    preset = PRESETS[name]

    assert SlaPolicy.from_dict(preset.to_dict()) == preset


def test_from_dict_empty_uses_defaults():
    assert SlaPolicy.from_dict({}) == SlaPolicy()


def test_policy_is_immutable():
    policy = SlaPolicy()

    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.human_seconds = 60  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.intent_human_seconds["urgent"] = 1  # type: ignore[index]


def test_policy_hash_matches_equality():
    rebuilt = SlaPolicy.from_dict(SlaPolicy().to_dict())

    assert hash(rebuilt) == hash(SlaPolicy())


def test_replace_revalidates():
    with pytest.raises(PolicyError, match="human_seconds"):
        dataclasses.replace(SlaPolicy(), human_seconds=0)


BAD_POLICIES = [
    pytest.param(
        {"human_seconds": 0},
        "human_seconds: must be a whole number of seconds from 1 to 2592000, got 0",
        id="human-zero",
    ),
    pytest.param(
        {"human_seconds": "30m"},
        "human_seconds: must be a whole number of seconds from 1 to 2592000, got '30m'",
        id="human-text",
    ),
    pytest.param(
        {"bot_seconds": True},
        "bot_seconds: must be a whole number of seconds from 1 to 3600, got True",
        id="bot-bool",
    ),
    pytest.param(
        {"bot_seconds": 7200},
        "bot_seconds: must be a whole number of seconds from 1 to 3600, got 7200",
        id="bot-too-long",
    ),
    pytest.param(
        {"intent_human_seconds": {"complaint": -5}},
        "intent_human_seconds['complaint']: must be a whole number of seconds "
        "from 1 to 2592000, got -5",
        id="intent-negative",
    ),
    pytest.param(
        {"intent_human_seconds": {"Complaint": 600}},
        "intent_human_seconds key 'Complaint': must be a lower-case code",
        id="intent-code-case",
    ),
    pytest.param(
        {"intent_human_seconds": {"default": 600}},
        "intent_human_seconds: 'default' is reserved; set human_seconds instead",
        id="intent-default-reserved",
    ),
    pytest.param(
        {"warn_ratio": 1.2},
        "warn_ratio: must be a number > 0 and < 1, got 1.2",
        id="warn-ratio-high",
    ),
    pytest.param(
        {"spam_has_clock": "yes"},
        "spam_has_clock: must be true or false, got 'yes'",
        id="spam-flag-text",
    ),
    pytest.param(
        {"ladder": [{"code": "warn", "at_ratio": 0.8, "action": "call_mom"}]},
        "ladder[0].action: unknown action 'call_mom'; expected one of "
        "warn_responsible, task_senior, notify_owner",
        id="ladder-action",
    ),
    pytest.param(
        {"ladder": [{"code": "warn", "at_ratio": 0, "action": "warn_responsible"}]},
        "ladder[0].at_ratio: must be a number > 0 and <= 10, got 0",
        id="ladder-ratio-zero",
    ),
    pytest.param(
        {
            "ladder": [
                {"code": "warn", "at_ratio": 0.8, "action": "warn_responsible"},
                {"code": "warn", "at_ratio": 1.0, "action": "task_senior"},
            ]
        },
        "ladder[1].code: duplicate level code 'warn'",
        id="ladder-duplicate",
    ),
    pytest.param(
        {"ladder": [{"code": "warn", "at_ratio": 0.8}]},
        "ladder[0]: missing field 'action'",
        id="ladder-missing-field",
    ),
    pytest.param(
        {"ladder": "warn"},
        "ladder: expected a list of levels, got 'warn'",
        id="ladder-not-list",
    ),
    pytest.param(
        {"human_minutes": 30},
        "SLA settings: unknown field 'human_minutes'",
        id="unknown-field",
    ),
    pytest.param(
        None,
        "SLA settings: expected a JSON object, got NoneType",
        id="not-an-object",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD_POLICIES)
def test_from_dict_validation_message(data, message):
    with pytest.raises(PolicyError) as caught:
        SlaPolicy.from_dict(data)

    assert str(caught.value).startswith(message)


def test_ladder_level_validates_itself():
    with pytest.raises(PolicyError, match="LadderLevel.action: unknown action 'email'"):
        LadderLevel("warn", 0.8, "email")


def test_policy_error_is_value_error():
    assert issubclass(PolicyError, ValueError)


def test_due_times_across_new_year_mon_fri():
    created = msk(2026, 12, 30, 17, 50)

    due = compute_due(created, [], False, SlaPolicy(), MON_FRI)

    assert due.human_due == msk(2027, 1, 11, 9, 20)
    assert MON_FRI.business_seconds_between(created, due.human_due) == 1800
    assert due.human_due - created == timedelta(days=11, hours=15, minutes=30)


def test_urgent_target_capped_at_default():
    policy = SlaPolicy(human_seconds=60)

    assert policy.human_target([], urgent=True) == (60, "urgent")
    assert policy.human_target(["complaint"], urgent=False) == (60, "complaint")
    assert policy.human_target([], urgent=False) == (60, "default")


def test_urgent_never_slower_than_default():
    for human_seconds in (60, 5 * 60, 12 * 60, 30 * 60, 3 * 3600):
        policy = SlaPolicy(human_seconds=human_seconds)
        urgent, _ = policy.human_target([], urgent=True)
        complaint, _ = policy.human_target(["complaint"], urgent=False)
        ordinary, _ = policy.human_target([], urgent=False)
        assert urgent <= ordinary
        assert complaint <= ordinary


def test_cancel_target_may_exceed_default():
    policy = SlaPolicy(human_seconds=60)

    assert policy.human_target(["cancel"], urgent=False) == (3600, "cancel")


def test_effective_intents_keep_stored_presets():
    policy = SlaPolicy(human_seconds=60)

    assert policy.effective_intent_seconds() == {
        "urgent": 60,
        "complaint": 60,
        "cancel": 3600,
    }
    assert policy.to_dict()["intent_human_seconds"]["urgent"] == 600


def test_compute_due_urgent_with_short_default():
    policy = SlaPolicy(human_seconds=60)

    due = compute_due(msk(2026, 4, 15, 10), [], True, policy, EVERY_DAY)

    assert due.human_seconds == 60
    assert due.human_due == msk(2026, 4, 15, 10, 1)


def test_bot_clock_only_for_chat_channels():
    policy = SlaPolicy()

    assert policy.has_bot_clock("openline")
    assert not policy.has_bot_clock("site")
    assert not policy.has_bot_clock("email")
    assert not policy.has_bot_clock(None)


def test_bot_channels_round_trip():
    policy = SlaPolicy(bot_channels=["site", "openline", "site"])

    assert policy.bot_channels == ("openline", "site")
    assert SlaPolicy.from_dict(policy.to_dict()) == policy


def test_bot_channels_reject_bad_name():
    with pytest.raises(PolicyError, match=r"bot_channels\[0\]"):
        SlaPolicy(bot_channels=["Open Line"])
