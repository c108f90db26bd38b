"""Schedule, templates, consent helpers and the reply classifier."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from b24app.reminders import consent, replies, schedule, templates

MSK = ZoneInfo("Europe/Moscow")
QUIET = (time(21, 0), time(9, 0))
STEPS = [
    {"kind": "confirm", "minutes_before": 24 * 60},
    {"kind": "remind", "minutes_before": 120},
]


def _msk(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=MSK).astimezone(UTC)


def test_plan_default_offsets():
    due = schedule.plan(
        _msk(10, 15), STEPS, now=_msk(1, 12), tz="Europe/Moscow", quiet=QUIET
    )
    assert [item.due_at for item in due] == [_msk(9, 15), _msk(10, 13)]


def test_plan_moves_night_reminder_earlier():
    due = schedule.plan(
        _msk(10, 10), STEPS, now=_msk(1, 12), tz="Europe/Moscow", quiet=QUIET
    )
    assert due[1].due_at == _msk(9, 20, 55)


def test_plan_moves_late_evening_reminder_earlier():
    due = schedule.plan(
        _msk(10, 23), STEPS, now=_msk(1, 12), tz="Europe/Moscow", quiet=QUIET
    )
    assert due[1].due_at == _msk(10, 20, 55)


def test_plan_never_in_quiet_hours():
    starts = [_msk(10, 0) + timedelta(minutes=17 * k) for k in range(200)]
    local_times = [
        item.due_at.astimezone(MSK)
        for start in starts
        for item in schedule.plan(
            start, STEPS, now=_msk(1, 12), tz="Europe/Moscow", quiet=QUIET
        )
    ]
    assert not any(schedule.in_quiet_hours(t, *QUIET) for t in local_times)


def test_plan_past_offsets_collapse_to_one_now():
    now = _msk(10, 12)
    due = schedule.plan(_msk(10, 17), STEPS, now=now, tz="Europe/Moscow", quiet=QUIET)
    assert [(i.kind, i.due_at) for i in due] == [
        ("confirm", now),
        ("remind", _msk(10, 15)),
    ]


def test_plan_visit_too_close_sends_nothing():
    due = schedule.plan(
        _msk(10, 12, 20), STEPS, now=_msk(10, 12), tz="Europe/Moscow", quiet=QUIET
    )
    assert due == []


def test_plan_thanks_after_visit_waits_for_morning():
    due = schedule.plan(
        _msk(10, 20),
        STEPS,
        now=_msk(1, 12),
        tz="Europe/Moscow",
        quiet=QUIET,
        thanks_after_minutes=120,
    )
    assert due[-1].due_at == _msk(11, 9)


def test_template_unknown_placeholder():
    check = templates.validate("Здравствуйте, {имя}!")
    assert "Неизвестное поле {имя}" in check.errors[0]


def test_template_broken_brace():
    check = templates.validate("Скидка {10%")
    assert not check.ok


def test_template_cyrillic_over_one_sms_warns():
    check = templates.validate("{name}, " + "ж" * 70)
    assert "предел" in check.warnings[0]


def test_template_latin_fits_160():
    text = "Hello {name}, see you at {time}. " + "x" * 100
    check = templates.validate(text, {"name": "Maria", "time": "14:30"})
    assert check.warnings == []


def test_template_render_real_values():
    values = templates.values_for(
        client_name="Мария",
        service="Стрижка",
        starts_at=_msk(12, 14, 30),
        tz="Europe/Moscow",
        address="ул. Ленина, 10",
        master="Анна",
    )
    text = templates.render("{name}: {service} {date} в {time}, {master}", values)
    assert text == "Мария: Стрижка 12 декабря в 14:30, Анна"


def test_sms_limit_gsm7_extension_counts_two():
    assert templates.sms_limit("{}") == (4, 160)


def test_phone_normalised_to_e164():
    assert consent.normalize_phone("8 (916) 123-45-67") == "+79161234567"


def test_phone_invalid_rejected():
    with pytest.raises(consent.ConsentError):
        consent.normalize_phone("12345")


def test_phone_masked():
    assert consent.mask_phone("+79161234567") == "+7916*****67"


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("1", "confirm"),
        ("Да, приду!", "confirm"),
        ("3", "cancel"),
        ("Не смогу прийти, отмените", "cancel"),
        ("Можно перенести на пятницу?", "reschedule"),
        ("СТОП", "opt_out"),
        ("stop", "opt_out"),
        ("А парковка есть?", "unclear"),
        ("да, но не уверена", "unclear"),
        ("7", "unclear"),
    ],
)
def test_classify_answer(text, intent):
    assert replies.classify(text) == intent


def test_classify_slot_choice():
    assert replies.classify("2", offer_size=3) == "slot:2"


def test_service_schedule_overrides_default():
    from b24app.reminders import config

    data = {
        "schedule": STEPS,
        "services": {"окрашивание": [{"kind": "confirm", "minutes_before": 2880}]},
    }
    steps = config.schedule_for(data, "Окрашивание волос")
    assert steps == [{"kind": "confirm", "minutes_before": 2880}]
