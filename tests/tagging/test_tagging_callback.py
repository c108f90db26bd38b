"""Call-back requests: when "перезвоните" is a booking and when a question."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from b24app.tagging import OfflineEngine

MSK = ZoneInfo("Europe/Moscow")
# Thursday.
RECEIVED = datetime(2026, 3, 12, 10, 15, tzinfo=MSK)


def test_callback_unreachable_urgent_is_question(engine: OfflineEngine) -> None:
    result = engine.classify("Перезвоните срочно, не могу дозвониться", RECEIVED)
    assert result.tags == ["question"]
    assert result.urgent is True
    assert result.desired_time is None


def test_callback_unreachable_explains_question(engine: OfflineEngine) -> None:
    result = engine.classify("Перезвоните срочно, не могу дозвониться", RECEIVED)
    assert "Вопрос" in result.explanation
    assert result.confidence["question"] >= 0.5


@pytest.mark.parametrize(
    "text",
    [
        "перезвоните пожалуйста",
        "Добрый день, перезвоните мне когда будет минутка",
        "Весь день не могу до вас дозвониться, перезвоните",
        "это Ирина, не могу до вас дозвониться, перезвоните",
        "Свяжитесь со мной, пожалуйста",
        "наберите меня как освободитесь",
    ],
)
def test_callback_without_visit_is_question(engine: OfflineEngine, text: str) -> None:
    assert engine.classify(text, RECEIVED).tags == ["question"]


@pytest.mark.parametrize(
    "text",
    [
        "Марина +7 916 555 44 33 перезвоните пожалуйста",
        "Наталья. Перезвоните",
        "перезвоните по поводу маникюра",
        "перезвоните срочно, у ребенка температура 39",
    ],
)
def test_callback_with_contact_or_visit_is_booking(
    engine: OfflineEngine, text: str
) -> None:
    assert engine.classify(text, RECEIVED).tags == ["booking"]


def test_callback_form_without_comment_is_booking(engine: OfflineEngine) -> None:
    text = "Обратный звонок\nИмя: Олег\nТелефон: +7 900 123-45-67"
    assert engine.classify(text, RECEIVED).tags == ["booking"]


def test_callback_question_form_is_not_question(engine: OfflineEngine) -> None:
    result = engine.classify(
        "Можете перезвонить? хочу узнать цену на абонемент", RECEIVED
    )
    assert result.tags == ["price"]


def test_callback_advert_stays_spam(engine: OfflineEngine) -> None:
    text = "Продвижение в соцсетях для вашего салона, перезвоните нам"
    assert engine.classify(text, RECEIVED).tags == ["spam"]


def test_callback_asap_is_urgent_without_time(engine: OfflineEngine) -> None:
    result = engine.classify("Свяжитесь со мной как можно скорее!!", RECEIVED)
    assert result.tags == ["question"]
    assert result.urgent is True
    assert result.desired_time is None


@pytest.mark.parametrize(
    "text",
    [
        "перезвоните мне в течение часа",
        "свяжитесь со мной в ближайшие полчаса",
        "перезвоните в течение 15 минут",
    ],
)
def test_callback_deadline_within_hour_is_urgent(
    engine: OfflineEngine, text: str
) -> None:
    assert engine.classify(text, RECEIVED).urgent is True


def test_callback_without_deadline_not_urgent(engine: OfflineEngine) -> None:
    result = engine.classify("Перезвоните в течение дня, пожалуйста", RECEIVED)
    assert result.urgent is False


def test_callback_unreachable_keeps_booking_day(engine: OfflineEngine) -> None:
    text = (
        "не могу дозвониться до администратора, хотела узнать есть ли окошко "
        "на завтра на маникюр"
    )
    result = engine.classify(text, RECEIVED)
    assert result.tags == ["booking"]
    assert result.desired_time == datetime(2026, 3, 13, tzinfo=MSK)
