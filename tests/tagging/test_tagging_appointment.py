"""Time of the booked visit that a cancellation or a reschedule names."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from b24app.tagging import Classification, ModelEngine, OfflineEngine
from b24app.tagging.evaluate import evaluate, format_table

from .conftest import GOOD_ANSWER, FakeChatServer

MSK = ZoneInfo("Europe/Moscow")
# Thursday 12 March 2026.
RECEIVED = datetime(2026, 3, 12, 10, 15, tzinfo=MSK)


def _at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=MSK)


def test_cancel_tomorrow_hour(engine: OfflineEngine) -> None:
    text = "Отмените, пожалуйста, мою запись на завтра на 15:00"
    result = engine.classify(text, RECEIVED)
    assert result.tags == ["cancel"]
    assert result.appointment_time == _at(13, 15)
    assert result.appointment_time_precision == "hour"


def test_cancel_keeps_desired_time_empty(engine: OfflineEngine) -> None:
    text = "Отмените, пожалуйста, мою запись на завтра на 15:00"
    result = engine.classify(text, RECEIVED)
    assert result.desired_time is None
    assert result.desired_time_precision is None


def test_cancel_weekday_day(engine: OfflineEngine) -> None:
    result = engine.classify("не смогу прийти в пятницу", RECEIVED)
    assert result.tags == ["cancel"]
    assert result.appointment_time == _at(13)
    assert result.appointment_time_precision == "day"


@pytest.mark.parametrize(
    ("text", "expected", "precision"),
    [
        ("отмените мою запись к терапевту на 17 марта", _at(17), "day"),
        ("ОТМЕНИТЕ ЗАПИСЬ НА ЗАВТРА НА 9 УТРА К ГИНЕКОЛОГУ", _at(13, 9), "hour"),
        ("отменяю персоналку в понедельник в 19:00, уезжаю", _at(16, 19), "hour"),
        ("Запись на окрашивание 20.03 в 11:00 прошу отменить", _at(20, 11), "hour"),
        ("отмените пж завтрашний педикюр", _at(13), "day"),
        (
            "не получится прийти сегодня на узи в 15 30, отмените",
            _at(12, 15, 30),
            "hour",
        ),
        ("Снимите меня с записи на пилатес завтра в 9", _at(13, 9), "hour"),
    ],
)
def test_cancel_appointment_time(
    engine: OfflineEngine, text: str, expected: datetime, precision: str
) -> None:
    result = engine.classify(text, RECEIVED)
    assert result.tags == ["cancel"]
    assert result.appointment_time == expected
    assert result.appointment_time_precision == precision


def test_cancel_today_is_urgent(engine: OfflineEngine) -> None:
    result = engine.classify("сегодня в 18 не приду отмените плиз 🙏", RECEIVED)
    assert result.urgent is True
    assert result.appointment_time == _at(12, 18)


def test_cancel_without_day_has_no_appointment(engine: OfflineEngine) -> None:
    result = engine.classify("Отмените мою запись на 15:00", RECEIVED)
    assert result.tags == ["cancel"]
    assert result.appointment_time is None


@pytest.mark.parametrize(
    ("text", "booked", "wanted"),
    [
        ("Перенесите мой маникюр с пятницы на понедельник", _at(13), _at(16)),
        ("перенесите меня с пятницы на субботу на 12", _at(13), _at(14, 12)),
        ("хочу перенести прием у невролога 18 марта на 25 марта", _at(18), _at(25)),
        (
            "давайте тренировку в субботу перенесем на воскресенье в 10",
            _at(14),
            _at(15, 10),
        ),
        ("тренировку завтра в 8 можно перенести на 10?", _at(13, 8), _at(13, 10)),
        ("Сдвиньте мою запись на завтра с 12 на 15", _at(13, 12), _at(13, 15)),
        (
            "я записан к урологу в понедельник можно перенести на среду",
            _at(16),
            _at(18),
        ),
        (
            "можно перенести запись с завтра на послезавтра на то же время? "
            "я записана на 14:00",
            _at(13, 14),
            _at(14, 14),
        ),
    ],
)
def test_reschedule_booked_and_new_time(
    engine: OfflineEngine, text: str, booked: datetime, wanted: datetime
) -> None:
    result = engine.classify(text, RECEIVED)
    assert result.tags == ["reschedule"]
    assert result.appointment_time == booked
    assert result.desired_time == wanted


def test_reschedule_other_time_no_desired(engine: OfflineEngine) -> None:
    text = "Перезвоните пожалуйста, нужно перенести запись на завтра на другое время"
    result = engine.classify(text, RECEIVED)
    assert result.tags == ["reschedule"]
    assert result.appointment_time == _at(13)
    assert result.desired_time is None


def test_reschedule_hour_before_noun(engine: OfflineEngine) -> None:
    result = engine.classify("у меня сегодня в 17 стрижка, можно на 19?", RECEIVED)
    assert result.tags == ["reschedule"]
    assert result.appointment_time == _at(12, 17)
    assert result.desired_time == _at(12, 19)


def test_reschedule_later_without_new_time(engine: OfflineEngine) -> None:
    result = engine.classify(
        "у меня маникюр сегодня в 15 можно попозже на час?", RECEIVED
    )
    assert result.tags == ["reschedule"]
    assert result.urgent is True
    assert result.appointment_time == _at(12, 15)


def test_booking_has_no_appointment(engine: OfflineEngine) -> None:
    result = engine.classify("запишите на маникюр на завтра в 11", RECEIVED)
    assert result.tags == ["booking"]
    assert result.appointment_time is None


def test_appointment_in_json(engine: OfflineEngine) -> None:
    record = engine.classify("отмените запись на субботу на 12:00", RECEIVED).to_json()
    assert record["appointment_time"] == "2026-03-14T12:00:00+03:00"
    assert record["appointment_time_precision"] == "hour"


def test_appointment_must_be_aware() -> None:
    with pytest.raises(ValueError, match="appointment_time"):
        Classification(
            tags=["cancel"], urgent=False, appointment_time=datetime(2026, 3, 14, 12)
        )


def test_evaluate_appointment_only_labelled() -> None:
    gold = [
        {
            "tags": ["cancel"],
            "appointment_time": "2026-03-14T12:00:00+03:00",
            "appointment_time_precision": "hour",
        },
        {"tags": ["cancel"]},
    ]
    pred = [
        {"tags": ["cancel"], "appointment_time": "2026-03-14T12:00:00+03:00"},
        {"tags": ["cancel"], "appointment_time": "2026-03-15T12:00:00+03:00"},
    ]
    metrics = evaluate(gold, pred)
    assert metrics["appointment_accuracy"] == 1.0
    assert metrics["appointment_labelled"] == 1


def test_evaluate_appointment_wrong_hour() -> None:
    gold = [
        {
            "tags": ["cancel"],
            "appointment_time": "2026-03-14T12:00:00+03:00",
            "appointment_time_precision": "hour",
        }
    ]
    pred = [{"tags": ["cancel"], "appointment_time": "2026-03-14T15:00:00+03:00"}]
    assert evaluate(gold, pred)["appointment_accuracy"] == 0.0


def test_evaluate_appointment_absent_without_labels() -> None:
    gold = [{"tags": ["cancel"], "urgent": False}]
    metrics = evaluate(gold, gold)
    assert metrics["appointment_accuracy"] is None
    assert "appointment time" not in format_table(metrics)


def test_model_answer_appointment(chat_server: FakeChatServer) -> None:
    chat_server.answer = GOOD_ANSWER | {
        "tags": ["cancel"],
        "desired_time": None,
        "desired_time_precision": None,
        "appointment_time": "2026-03-14T00:00:00+03:00",
        "appointment_time_precision": "day",
    }
    engine = ModelEngine(chat_server.base_url, "test-model", "test-key", timeout=0.5)
    result = engine.classify("отмените запись на субботу", RECEIVED)
    assert result.engine == "model"
    assert result.appointment_time == _at(14)
    assert result.appointment_time_precision == "day"


def test_model_answer_without_appointment(chat_server: FakeChatServer) -> None:
    engine = ModelEngine(chat_server.base_url, "test-model", "test-key", timeout=0.5)
    result = engine.classify("запишите на маникюр", RECEIVED)
    assert result.engine == "model"
    assert result.appointment_time is None
