"""SLA settings: validation messages per field, working calendars, preview."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from b24app.sla import settings as sla_settings
from b24app.sla.policy import SlaPolicy

MSK = ZoneInfo("Europe/Moscow")
SHIFT = {str(day): [["10:00", "19:00"]] for day in range(5)}


def _portal(**settings):
    return SimpleNamespace(
        id=1, member_id="m", settings=settings, token_user_id=1, language="ru"
    )


def _errors(data, **options) -> dict[str, str]:
    with pytest.raises(sla_settings.SettingsInvalid) as info:
        sla_settings.validate(data, **options)
    return info.value.errors


# Validation

ERROR_CASES = [
    pytest.param(
        {"calendar": {"tz": "Moscow"}}, "calendar.tz", "часовой пояс", id="bad-zone"
    ),
    pytest.param(
        {"calendar": {"country": "XX"}}, "calendar.country", "Код страны", id="country"
    ),
    pytest.param(
        {"calendar": {"weekly": {"0": [["18:00", "09:00"]]}}},
        "calendar.weekly.0",
        "раньше конца",
        id="start-after-end",
    ),
    pytest.param(
        {"calendar": {"weekly": {"1": [["09:00", "14:00"], ["13:00", "18:00"]]}}},
        "calendar.weekly.1",
        "пересекаются",
        id="overlap",
    ),
    pytest.param(
        {"calendar": {"weekly": {"2": [["9", "18:00"]]}}},
        "calendar.weekly.2",
        "ЧЧ:ММ",
        id="time-format",
    ),
    pytest.param(
        {"calendar": {"weekly": {}}},
        "calendar.weekly",
        "хотя бы для одного дня",
        id="never-open",
    ),
    pytest.param(
        {"calendar": {"custom_dates": {"2026-02-30": []}}},
        "calendar.custom_dates.2026-02-30",
        "ГГГГ-ММ-ДД",
        id="bad-date",
    ),
    pytest.param({"segment": "bakery"}, "segment", "тип бизнеса", id="segment"),
    pytest.param(
        {"policy": {"human_seconds": 0}},
        "policy.human_seconds",
        "больше нуля",
        id="zero-target",
    ),
    pytest.param(
        {"policy": {"bot_seconds": 7200}},
        "policy.bot_seconds",
        "Ответ бота: не больше 3600 с",
        id="bot-too-long",
    ),
    pytest.param(
        {"policy": {"bot_seconds": -5}},
        "policy.bot_seconds",
        "Ответ бота: целое число секунд больше нуля",
        id="bot-negative",
    ),
    pytest.param(
        {"policy": {"human_seconds": -5 * 60}},
        "policy.human_seconds",
        "Ответ менеджера: число минут больше нуля",
        id="human-negative-minutes",
    ),
    pytest.param(
        {"policy": {"human_seconds": 31 * 86400}},
        "policy.human_seconds",
        "Ответ менеджера: не больше 43200 мин",
        id="human-too-long",
    ),
    pytest.param(
        {"policy": {"intent_human_seconds": {"complaint": "10"}}},
        "policy.intent_human_seconds.complaint",
        "Срок для «жалоба»: число минут больше нуля",
        id="intent-text",
    ),
    pytest.param(
        {"policy": {"intent_human_seconds": {"urgent": -300}}},
        "policy.intent_human_seconds.urgent",
        "Срок для «срочно»: число минут",
        id="intent-negative",
    ),
    pytest.param(
        {"policy": {"bot_channels": "openline"}},
        "policy.bot_channels",
        "список каналов",
        id="bot-channels-text",
    ),
    pytest.param(
        {"policy": {"warn_ratio": 1.5}},
        "policy.warn_ratio",
        "меньше 1",
        id="warn-ratio",
    ),
    pytest.param(
        {"policy": {"ladder": [{"code": "warn", "at_ratio": 1, "action": "sms"}]}},
        "policy.ladder.0.action",
        "Действие",
        id="ladder-action",
    ),
    pytest.param(
        {
            "policy": {
                "ladder": [
                    {"code": "task", "at_ratio": 1, "action": "task_senior"},
                    {"code": "task", "at_ratio": 2, "action": "notify_owner"},
                ]
            }
        },
        "policy.ladder.1.code",
        "уже есть",
        id="ladder-duplicate",
    ),
    pytest.param(
        {
            "policy": {
                "ladder": [{"code": "x" * 30, "at_ratio": 1, "action": "task_senior"}]
            }
        },
        "policy.ladder.0.code",
        "до 24",
        id="ladder-long-code",
    ),
    pytest.param({"senior_user_id": "boss"}, "senior_user_id", "сотрудник", id="user"),
    pytest.param(
        {"manager_schedules": {"4": {}}},
        "manager_schedules.4",
        "хотя бы одну смену",
        id="empty-schedule",
    ),
    pytest.param(
        {"manager_schedules": {"4": {"7": [["09:00", "18:00"]]}}},
        "manager_schedules.4.7",
        "День недели",
        id="schedule-weekday",
    ),
    pytest.param({"engine": {}}, "engine", "Неизвестное поле", id="unknown-key"),
]


@pytest.mark.parametrize(("data", "path", "text"), ERROR_CASES)
def test_validate_names_the_field(data, path, text):
    assert text in _errors(data)[path]


def test_validate_reports_every_faulty_field():
    errors = _errors(
        {"calendar": {"tz": "Nowhere/City"}, "policy": {"human_seconds": -1}}
    )

    assert sorted(errors) == ["calendar.tz", "policy.human_seconds"]


def test_validate_speaks_english_on_request():
    errors = _errors({"policy": {"warn_ratio": 2}}, lang="en")

    assert errors["policy.warn_ratio"].startswith("A share of the target")


def test_validate_checks_users_on_the_portal():
    errors = _errors({"owner_user_id": 99}, known_users=[1, 2, 3])

    assert "99" in errors["owner_user_id"]


def test_validate_returns_stored_form():
    cleaned = sla_settings.validate(
        {
            "segment": "clinic",
            "calendar": {
                "tz": "Asia/Yekaterinburg",
                "weekly": {"0": [["09:00", "18:00"]]},
            },
            "manager_schedules": {"4": SHIFT},
        }
    )

    assert cleaned["calendar"]["weekly"]["1"] == []
    assert cleaned["manager_schedules"]["4"]["0"] == [["10:00", "19:00"]]


def test_validate_accepts_current_settings():
    current = sla_settings.current(_portal())

    assert sla_settings.validate(current)["policy"] == current["policy"]


# Reading


def test_policy_follows_segment_preset():
    assert sla_settings.policy(_portal(segment="clinic")).human_seconds == 15 * 60


def test_working_calendar_uses_the_schedule():
    portal = _portal(manager_schedules={"4": SHIFT})
    monday_nine = datetime(2026, 12, 7, 9, 30, tzinfo=MSK)

    assert not sla_settings.is_working(portal, 4, monday_nine)


def test_working_calendar_without_schedule_is_business_hours():
    portal = _portal(manager_schedules={"4": SHIFT})
    monday_nine = datetime(2026, 12, 7, 9, 30, tzinfo=MSK)

    assert sla_settings.is_working(portal, 5, monday_nine)


def test_working_calendar_keeps_business_closed_dates():
    portal = _portal(
        calendar={"custom_dates": {"2026-12-08": []}}, manager_schedules={"4": SHIFT}
    )
    tuesday = datetime(2026, 12, 8, 12, 0, tzinfo=MSK)

    assert sla_settings.next_working_time(portal, 4, tuesday) == datetime(
        2026, 12, 9, 7, 0, tzinfo=UTC
    )


def test_working_calendar_keeps_public_holidays():
    portal = _portal(manager_schedules={"4": SHIFT})
    new_year = datetime(2027, 1, 1, 12, 0, tzinfo=MSK)

    assert sla_settings.next_working_time(portal, 4, new_year).date().isoformat() == (
        "2027-01-11"
    )


# Preview


def test_preview_out_of_hours_lead_starts_next_morning():
    result = sla_settings.preview(
        _portal(), datetime(2026, 12, 7, 22, 15, tzinfo=MSK), []
    )

    assert result["tiers"][1]["text"] == (
        "Лид, созданный 07.12.2026 22:15, должен получить ответ менеджера до "
        "08.12.2026 09:30 (30 мин рабочего времени). Лид пришёл в нерабочее время: "
        "отсчёт начнётся 08.12.2026 09:00."
    )


def test_preview_urgent_lead_has_short_target():
    result = sla_settings.preview(
        _portal(), datetime(2026, 12, 7, 12, 0, tzinfo=MSK), ["urgent"]
    )

    assert result["tiers"][1]["due_at"] == "2026-12-07T12:10:00+03:00"


def test_preview_bot_tier_counts_wall_clock():
    result = sla_settings.preview(
        _portal(), datetime(2026, 12, 7, 22, 15, tzinfo=MSK), []
    )

    assert "ответ бота до 07.12.2026 22:15:30." in result["tiers"][0]["text"]


def test_preview_names_bot_channels():
    result = sla_settings.preview(
        _portal(), datetime(2026, 12, 7, 12, 0, tzinfo=MSK), []
    )

    assert result["tiers"][0]["text"].endswith(
        "Срок бота действует только для лидов из каналов: чаты открытых линий."
    )


def test_preview_short_human_target_shows_seconds():
    portal = _portal(policy={"human_seconds": 60})

    result = sla_settings.preview(
        portal, datetime(2026, 12, 7, 12, 0, 20, tzinfo=MSK), ["urgent"]
    )

    assert "ответ менеджера до 07.12.2026 12:01:20 (1 мин" in result["text"]
    assert result["tiers"][1]["target_seconds"] == 60


def test_effective_targets_mark_capped_intents():
    targets = sla_settings.effective_targets(SlaPolicy(human_seconds=60))

    assert targets["intent_human_seconds"]["urgent"] == 60
    assert targets["intent_human_seconds"]["cancel"] == 3600
    assert targets["capped"] == ["complaint", "urgent"]


def test_preview_spam_has_no_clock():
    result = sla_settings.preview(
        _portal(), datetime(2026, 12, 7, 12, 0, tzinfo=MSK), ["spam"]
    )

    assert result["clock"] is False


def test_preview_in_english():
    result = sla_settings.preview(
        _portal(), datetime(2026, 12, 7, 12, 0, tzinfo=MSK), [], lang="en"
    )

    assert result["tiers"][1]["text"].startswith(
        "A lead created 07.12.2026 12:00 would"
    )
