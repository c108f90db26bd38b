"""Offline engine on messages written for these tests (not from the dev set)."""

from __future__ import annotations

import concurrent.futures
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from b24app.tagging import INTENTS, RU_LABELS, Classification, OfflineEngine

MSK = ZoneInfo("Europe/Moscow")
# Saturday, 14 March 2026, 10:00 Moscow time.
SAT = datetime(2026, 3, 14, 10, 0, tzinfo=MSK)


def at(day: int, hour: int = 0, month: int = 3, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=MSK)


# --- typos, transliteration, emoji, forms ---------------------------------


def test_offline_typos_booking(engine: OfflineEngine) -> None:
    result = engine.classify("Хочу запесатся на педекюр в суботу", SAT)
    assert result.tags == ["booking"]


def test_offline_typos_service(engine: OfflineEngine) -> None:
    result = engine.classify("Хочу запесатся на педекюр в суботу", SAT)
    assert result.service == "педикюр"


def test_offline_slang_price(engine: OfflineEngine) -> None:
    result = engine.classify("скока стоит абонимент на месяц", SAT)
    assert result.tags == ["price"]


def test_offline_translit_booking(engine: OfflineEngine) -> None:
    result = engine.classify("hochu zapisatsa na manikur zavtra v 12", SAT)
    assert result.tags == ["booking"]


def test_offline_translit_time(engine: OfflineEngine) -> None:
    result = engine.classify("hochu zapisatsa na manikur zavtra v 12", SAT)
    assert result.desired_time == at(15, 12)


def test_offline_emoji_slot_question(engine: OfflineEngine) -> None:
    result = engine.classify("💅💅 на понедельник есть местечко? 🙏🙏", SAT)
    assert result.tags == ["booking"]


def test_offline_form_dump_name(engine: OfflineEngine) -> None:
    text = "Имя: Полина\nТелефон: +7 901 222-33-44\nУслуга: Массаж спины\nКомментарий: "
    assert engine.classify(text, SAT).name == "Полина"


def test_offline_form_dump_callback_is_booking(engine: OfflineEngine) -> None:
    text = "Перезвоните мне\nИмя: Полина\nТелефон: +7 901 222-33-44"
    assert engine.classify(text, SAT).tags == ["booking"]


def test_offline_form_dump_service_field(engine: OfflineEngine) -> None:
    text = "Имя: Полина\nТелефон: +7 901 222-33-44\nУслуга: Массаж спины\nКомментарий: "
    assert engine.classify(text, SAT).service == "массаж"


def test_offline_form_dump_date_field(engine: OfflineEngine) -> None:
    text = "Имя: Полина\nТелефон: +7 901 222-33-44\nЖелаемая дата: 20.03.2026"
    assert engine.classify(text, SAT).desired_time == at(20)


# --- negation, implied intents, several intents ----------------------------


def test_offline_negation_cannot_come_is_cancel(engine: OfflineEngine) -> None:
    result = engine.classify("Не смогу прийти в среду на педикюр, простите", SAT)
    assert result.tags == ["cancel"]


def test_offline_negated_booking_verb_is_cancel(engine: OfflineEngine) -> None:
    result = engine.classify("Не надо меня записывать на стрижку, я передумал", SAT)
    assert result.tags == ["cancel"]


def test_offline_cannot_come_with_new_day_is_reschedule(engine: OfflineEngine) -> None:
    result = engine.classify(
        "Записана на УЗИ в понедельник, но не смогу прийти. Можно на вторник?", SAT
    )
    assert result.tags == ["reschedule"]


def test_offline_implied_booking_slot(engine: OfflineEngine) -> None:
    result = engine.classify("а окошко на пятницу к Лене есть?", SAT)
    assert result.tags == ["booking"]


def test_offline_implied_booking_time(engine: OfflineEngine) -> None:
    result = engine.classify("а окошко на пятницу к Лене есть?", SAT)
    assert result.desired_time == at(20)


def test_offline_price_and_booking(engine: OfflineEngine) -> None:
    result = engine.classify(
        "Почём чистка лица? И запишите на среду к 11, если можно", SAT
    )
    assert result.tags == ["booking", "price"]


def test_offline_booking_and_info_question(engine: OfflineEngine) -> None:
    result = engine.classify(
        "Хочу записаться на йогу в воскресенье. Коврик брать свой?", SAT
    )
    assert set(result.tags) == {"booking", "question"}


def test_offline_complaint(engine: OfflineEngine) -> None:
    result = engine.classify(
        "Администратор нагрубила, мастер опоздала на полчаса. Очень недовольна!", SAT
    )
    assert result.tags == ["complaint"]


def test_offline_complaint_with_cancel(engine: OfflineEngine) -> None:
    result = engine.classify("Отменяю абонемент, в зале грязь и тренер хамит", SAT)
    assert set(result.tags) == {"cancel", "complaint"}


def test_offline_pure_question(engine: OfflineEngine) -> None:
    result = engine.classify("Подскажите, до скольки вы работаете в субботу?", SAT)
    assert result.tags == ["question"]


# --- spam -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Предлагаем продвижение вашего салона в соцсетях, первые 10 клиентов бесплатно",
        "Ищу работу мастером маникюра, стаж 4 года",
        "ываыфвафыва",
        "Алло, это пиццерия? Можно две маргариты",
        "Продам беговую дорожку, почти новая",
    ],
)
def test_offline_spam(engine: OfflineEngine, text: str) -> None:
    assert engine.classify(text, SAT).tags == ["spam"]


def test_offline_spam_has_no_details(engine: OfflineEngine) -> None:
    result = engine.classify(
        "СРОЧНО! Увеличим поток клиентов салона, продвижение и таргет. Ирина", SAT
    )
    assert (result.urgent, result.name, result.service) == (False, None, None)


# --- empty, long, foreign ----------------------------------------------------


def test_offline_empty_text_falls_back_to_question(engine: OfflineEngine) -> None:
    assert engine.classify("", SAT).tags == ["question"]


def test_offline_empty_text_needs_review(engine: OfflineEngine) -> None:
    assert engine.classify("   ", SAT).needs_review


def test_offline_punctuation_only_needs_review(engine: OfflineEngine) -> None:
    assert engine.classify("?!...", SAT).needs_review


def test_offline_very_long_text_is_capped(engine: OfflineEngine) -> None:
    text = "Хочу записаться на маникюр завтра. " + "бла " * 50_000 + "\nМарина"
    result = engine.classify(text, SAT)
    assert result.tags == ["booking"]


def test_offline_very_long_text_keeps_signature(engine: OfflineEngine) -> None:
    text = "Хочу записаться на маникюр завтра. " + "бла " * 50_000 + "\nМарина"
    assert engine.classify(text, SAT).name == "Марина"


def test_offline_english_booking(engine: OfflineEngine) -> None:
    result = engine.classify("Hi! Can I book a pedicure for tomorrow at 5pm?", SAT)
    assert result.tags == ["booking"]


def test_offline_english_time(engine: OfflineEngine) -> None:
    result = engine.classify("Hi! Can I book a pedicure for tomorrow at 5pm?", SAT)
    assert result.desired_time == at(15, 17)


def test_offline_english_price(engine: OfflineEngine) -> None:
    assert engine.classify("How much is a manicure?", SAT).tags == ["price"]


def test_offline_unknown_script_question(engine: OfflineEngine) -> None:
    assert engine.classify("我想预约明天的按摩", SAT).tags == ["question"]


def test_offline_unknown_script_needs_review(engine: OfflineEngine) -> None:
    assert engine.classify("我想预约明天的按摩", SAT).needs_review


def test_offline_unknown_script_low_confidence(engine: OfflineEngine) -> None:
    assert engine.classify("我想预约明天的按摩", SAT).confidence["question"] < 0.5


# --- desired time --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "precision"),
    [
        ("Запишите на стрижку завтра в 15", at(15, 15), "hour"),
        ("Хочу на маникюр в субботу", at(21), "day"),
        ("Можно на массаж послезавтра после 18?", at(16, 18), "hour"),
        ("Запишите на укладку на 8 марта", at(8, month=3, year=2027), "day"),
        ("Хочу на педикюр сегодня вечером", at(14), "day"),
        ("Хочу на педикюр сегодня в 7 вечера", at(14, 19), "hour"),
        ("Запишите к терапевту через неделю", at(21), "day"),
        (
            "Можно на УЗИ 02.04.2026 в 9:30?",
            datetime(2026, 4, 2, 9, 30, tzinfo=MSK),
            "hour",
        ),
        (
            "Хочу на тренировку на следующей неделе в среду часа в три",
            at(18, 15),
            "hour",
        ),
    ],
)
def test_offline_desired_time(
    engine: OfflineEngine, text: str, expected: datetime, precision: str
) -> None:
    result = engine.classify(text, SAT)
    assert (result.desired_time, result.desired_time_precision) == (
        expected,
        precision,
    )


def test_offline_reschedule_takes_new_time(engine: OfflineEngine) -> None:
    result = engine.classify(
        "Перенесите мою стрижку с понедельника на вторник на 17:00", SAT
    )
    assert result.desired_time == at(17, 17)


def test_offline_reschedule_same_time(engine: OfflineEngine) -> None:
    result = engine.classify(
        "Я записана на среду на 12:00, можно перенести на четверг на то же время?",
        SAT,
    )
    assert result.desired_time == at(19, 12)


def test_offline_cancel_has_no_desired_time(engine: OfflineEngine) -> None:
    result = engine.classify("Отмените запись на завтра в 10, пожалуйста", SAT)
    assert result.desired_time is None


def test_offline_past_date_is_not_desired(engine: OfflineEngine) -> None:
    result = engine.classify(
        "В прошлую субботу мне сделали маникюр, хочу ещё раз в среду", SAT
    )
    assert result.desired_time == at(18)


def test_offline_until_is_not_desired(engine: OfflineEngine) -> None:
    result = engine.classify("Какие врачи принимают до 20 марта?", SAT)
    assert result.desired_time is None


def test_offline_new_year_rollover(engine: OfflineEngine) -> None:
    result = engine.classify("Запишите на маникюр 3 января", at(29, 12, month=12))
    assert result.desired_time == datetime(2027, 1, 3, tzinfo=MSK)


def test_offline_time_resolved_in_portal_zone(engine: OfflineEngine) -> None:
    # 22:30 UTC on the 14th is already 01:30 on the 15th in Moscow.
    received = datetime(2026, 3, 14, 22, 30, tzinfo=UTC)
    result = engine.classify("Запишите на стрижку завтра в 12", received)
    assert result.desired_time == at(16, 12)


def test_offline_desired_time_is_aware(engine: OfflineEngine) -> None:
    result = engine.classify(
        "Запишите на стрижку завтра в 12", SAT, tz="Asia/Yekaterinburg"
    )
    assert result.desired_time.utcoffset().total_seconds() == 5 * 3600


# --- urgency -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Срочно нужен стоматолог, флюс, щеку раздуло",
        "Можно сегодня на маникюр после 16?",
        "У дочки температура 38,9, можно педиатра?",
        "Сегодня в 18 не приду на тренировку, отмените",
    ],
)
def test_offline_urgent(engine: OfflineEngine, text: str) -> None:
    assert engine.classify(text, SAT).urgent


@pytest.mark.parametrize(
    "text",
    [
        "Запишите на маникюр в пятницу",
        "Срочно улетаю в командировку, отмените запись на пятницу",
        "Сегодня уже облезло покрытие, которое сделали у вас во вторник",
    ],
)
def test_offline_not_urgent(engine: OfflineEngine, text: str) -> None:
    assert not engine.classify(text, SAT).urgent


# --- name and service ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Здравствуйте, меня зовут Ксения, хочу на чистку лица", "Ксения"),
        ("это Лена, можно к Марине на стрижку в пятницу", "Лена"),
        ("Запишите на массаж в среду. С уважением, Игорь Петрович", "Игорь"),
        ("Ольга, добрый день! Можно к вам на маникюр завтра?", None),
        ("Можно записаться к Анне на брови?", None),
    ],
)
def test_offline_name(engine: OfflineEngine, text: str, name: str | None) -> None:
    assert engine.classify(text, SAT).name == name


@pytest.mark.parametrize(
    ("text", "service"),
    [
        ("Запишите к неврологу на понедельник", "приём невролога"),
        ("Можно к детскому стоматологу в среду?", "приём детского стоматолога"),
        ("хочу ноготочки обновить", "маникюр"),
        ("Сколько стоит мужская стрижка с бородой?", "мужская стрижка"),
        ("Хочу на маникюр и педикюр в субботу", "маникюр и педикюр"),
        ("Запишите на персоналку к Диме", "персональная тренировка"),
    ],
)
def test_offline_service(engine: OfflineEngine, text: str, service: str) -> None:
    assert engine.classify(text, SAT).service == service


# --- result object and concurrency --------------------------------------------------


def test_offline_confidence_covers_all_tags(engine: OfflineEngine) -> None:
    result = engine.classify("Запишите на стрижку завтра", SAT)
    assert set(result.confidence) == {*INTENTS, "urgent"}


def test_offline_explanation_is_russian(engine: OfflineEngine) -> None:
    result = engine.classify("Запишите на стрижку завтра", SAT)
    assert "Запись" in result.explanation


def test_offline_engine_name(engine: OfflineEngine) -> None:
    assert engine.classify("Запишите на стрижку завтра", SAT).engine == "offline"


def test_offline_thread_safe(engine: OfflineEngine) -> None:
    texts = [
        "Хочу на маникюр завтра в 12",
        "Сколько стоит УЗИ?",
        "Отмените запись на пятницу",
        "ываолдж",
    ] * 25
    expected = [engine.classify(t, SAT).to_json() for t in texts]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda t: engine.classify(t, SAT).to_json(), texts))
    assert got == expected


def test_classification_spam_is_exclusive() -> None:
    with pytest.raises(ValueError):
        Classification(tags=["spam", "price"], urgent=False)


def test_classification_needs_a_tag() -> None:
    with pytest.raises(ValueError):
        Classification(tags=[], urgent=False)


def test_classification_to_json_fields() -> None:
    result = Classification(tags=["booking"], urgent=True, confidence={"booking": 0.9})
    assert set(result.to_json()) >= {
        "tags",
        "urgent",
        "name",
        "service",
        "desired_time",
        "desired_time_precision",
        "confidence",
        "engine",
    }


def test_ru_labels() -> None:
    assert [RU_LABELS[k] for k in (*INTENTS, "urgent", "review")] == [
        "Запись",
        "Цена",
        "Перенос",
        "Отмена",
        "Жалоба",
        "Вопрос",
        "Спам",
        "Срочно",
        "Проверить",
    ]
