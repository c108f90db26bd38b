"""Offline engine on general error patterns: spam that quotes prices, verb
forms and negation, questions that carry a booking, second intents, forms,
indignant questions, services and the review flag."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from b24app.tagging import OfflineEngine

MSK = ZoneInfo("Europe/Moscow")
# Wednesday, 10 June 2026, 11:00 Moscow time.
WED = datetime(2026, 6, 10, 11, 0, tzinfo=MSK)


def run(engine: OfflineEngine, text: str):
    return engine.classify(text, WED)


# --- spam beaten by price and question words --------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Добрый день, я таргетолог, могу настроить вашу рекламу. Цена от 15 000",
        "Имя: Cheap Crypto Buy\nКомментарий: http://coins.example best price",
        "Оля, ты где? мы стоим у метро уже полчаса",
        "Здравствуйте, вам требуется администратор? Могу работать в выходные",
        "вам не нужен курьер? опыт 2 года, свой автомобиль",
    ],
)
def test_spam_beats_price_question(engine: OfflineEngine, text: str) -> None:
    assert run(engine, text).tags == ["spam"]


def test_spam_pitch_has_no_name(engine: OfflineEngine) -> None:
    text = "Меня зовут Павел, я SEO-специалист, могу поднять ваш сайт. Цена 9000"
    assert run(engine, text).name is None


def test_spam_standing_is_not_price(engine: OfflineEngine) -> None:
    result = run(engine, "Мы стоим в пробке, будем позже, Дим")
    assert "price" not in result.tags


# --- verb forms and negation -------------------------------------------------


def test_cancel_reflexive_form(engine: OfflineEngine) -> None:
    result = run(engine, "Маникюр на пятницу отменяется, уезжаю")
    assert result.tags == ["cancel"]


def test_cancel_reflexive_no_time(engine: OfflineEngine) -> None:
    result = run(engine, "Маникюр на пятницу отменяется, уезжаю")
    assert result.desired_time is None


def test_cancel_deferred_booking(engine: OfflineEngine) -> None:
    result = run(engine, "не записывайте пока, сначала скажите цену на пилинг")
    assert result.tags == ["price"]


def test_cancel_negated_cancel_verb(engine: OfflineEngine) -> None:
    result = run(engine, "отменять не буду, лучше перенесите массаж на субботу")
    assert result.tags == ["reschedule"]


def test_time_day_adjective_in_booking(engine: OfflineEngine) -> None:
    result = run(engine, "есть места на завтрашнюю йогу в 8:30? хочу прийти")
    assert result.desired_time == datetime(2026, 6, 11, 8, 30, tzinfo=MSK)


def test_time_lateness_not_clock(engine: OfflineEngine) -> None:
    result = run(engine, "у меня стрижка в 12, задерживаюсь минут на 15, простите")
    assert result.desired_time is None


def test_urgent_lateness(engine: OfflineEngine) -> None:
    result = run(engine, "у меня стрижка в 12, задерживаюсь минут на 15, простите")
    assert result.urgent is True


def test_time_refused_day(engine: OfflineEngine) -> None:
    text = "хочу перенести педикюр, в пятницу не успеваю, давайте на субботу"
    assert run(engine, text).desired_time.date() == date(2026, 6, 13)


def test_time_new_hour_for_named_visit(engine: OfflineEngine) -> None:
    result = run(engine, "Можно перенести сегодняшний массаж на 18:00?")
    assert result.desired_time == datetime(2026, 6, 10, 18, 0, tzinfo=MSK)


# --- a question that carries a booking ----------------------------------------


def test_booking_opening_question_with_need(engine: OfflineEngine) -> None:
    result = run(engine, "Вы сегодня работаете? Нужен окулист, глаз покраснел")
    assert set(result.tags) == {"booking", "question"}


def test_booking_opening_question_day(engine: OfflineEngine) -> None:
    result = run(engine, "Вы сегодня работаете? Нужен окулист, глаз покраснел")
    assert result.desired_time == datetime(2026, 6, 10, tzinfo=MSK)


def test_booking_need_before_question_clause(engine: OfflineEngine) -> None:
    result = run(engine, "Мне нужно на наращивание волос, такой мастер есть?")
    assert "booking" in result.tags


# --- second intent --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Хочу на кератин, сколько по времени и по деньгам?",
        "Подарочные карты есть? на какую сумму?",
        "За сколько отдадите абонемент на полгода?",
        "Первое занятие бесплатное?",
    ],
)
def test_price_second_wording(engine: OfflineEngine, text: str) -> None:
    assert "price" in run(engine, text).tags


def test_booking_consultation_with_price(engine: OfflineEngine) -> None:
    text = "Нужна консультация невролога, сколько стоит приём?"
    assert set(run(engine, text).tags) == {"booking", "price"}


# --- forms and names ------------------------------------------------------------


def test_form_name_and_phone_is_booking(engine: OfflineEngine) -> None:
    result = run(engine, "Имя: Полина\nТелефон: +7 900 111 22 33")
    assert result.tags == ["booking"]


def test_form_name_and_phone_name(engine: OfflineEngine) -> None:
    result = run(engine, "Имя: Полина\nТелефон: +7 900 111 22 33")
    assert result.name == "Полина"


def test_form_full_name_surname_first(engine: OfflineEngine) -> None:
    result = run(engine, "ФИО: Смирнова Дарья Олеговна\nКомментарий: на УЗИ")
    assert result.name == "Дарья"


def test_form_one_line(engine: OfflineEngine) -> None:
    result = run(engine, "Имя: Григорий Комментарий: запишите на ЭКГ в пятницу")
    assert result.name == "Григорий"


def test_name_first_word_before_phone(engine: OfflineEngine) -> None:
    result = run(engine, "Вероника +7 900 222 33 44 перезвоните")
    assert result.name == "Вероника"


def test_name_first_word_before_full_stop(engine: OfflineEngine) -> None:
    result = run(engine, "Лена. Хочу отменить массаж в четверг")
    assert result.name == "Лена"


def test_name_signature_after_hour(engine: OfflineEngine) -> None:
    result = run(engine, "Запишите на педикюр в пятницу к 10. Оксана")
    assert result.name == "Оксана"


# --- complaints phrased as questions ----------------------------------------------


def test_complaint_indignant_question(engine: OfflineEngine) -> None:
    text = "администратор опять хамит клиентам, я плачу 5000 в месяц, это нормально?"
    assert run(engine, text).tags == ["complaint"]


def test_complaint_remedy_question(engine: OfflineEngine) -> None:
    text = "Мастер испортила мне стрижку, теперь всё неровно. Что мне делать?"
    assert run(engine, text).tags == ["complaint"]


# --- services -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "service"),
    [
        ("болит зуб, можно сегодня?", "приём стоматолога"),
        ("хочу френч в субботу", "маникюр"),
        ("сколько стоит шеллак?", "маникюр"),
        ("запишите на стрижку и окрашивание в пятницу", "стрижка и окрашивание"),
        ("сколько стоит педикюр с покрытием?", "педикюр"),
        ("хочу макияж и пробный образ перед свадьбой", "макияж"),
        ("есть мастер по наращиванию волос?", "наращивание волос"),
    ],
)
def test_service_pick(engine: OfflineEngine, text: str, service: str) -> None:
    assert run(engine, text).service == service


def test_service_plus_keeps_first(engine: OfflineEngine) -> None:
    result = run(engine, "можно на стрижку + укладку завтра?")
    assert result.service == "стрижка"


# --- explanations and review ---------------------------------------------------------


def test_explanation_skips_greeting(engine: OfflineEngine) -> None:
    result = run(engine, "Здравствуйте, где у вас парковка?")
    assert "здравствуйте" not in result.explanation.lower()


def test_explanation_names_predicate(engine: OfflineEngine) -> None:
    result = run(engine, "Добрый день! Вы в субботу работаете?")
    assert "«работаете»" in result.explanation


def test_review_when_spam_competes(engine: OfflineEngine) -> None:
    result = run(
        engine, "Добрый день, я таргетолог, могу настроить вашу рекламу. Цена?"
    )
    assert result.needs_review is True


def test_review_plain_booking(engine: OfflineEngine) -> None:
    result = run(engine, "Запишите меня на маникюр в пятницу в 15")
    assert result.needs_review is False


# --- guards against over-eager rules ----------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Вам нужна справка от терапевта для бассейна?",
        "Администратор может подсказать график работы?",
        "Света, ты завтра работаешь? где вы сейчас, хочу на маникюр",
        "Не отменяйте, пожалуйста, я просто опоздаю на 10 минут",
    ],
)
def test_guard_client_is_not_spam(engine: OfflineEngine, text: str) -> None:
    assert "spam" not in run(engine, text).tags


def test_guard_kept_visit_is_not_cancel(engine: OfflineEngine) -> None:
    result = run(engine, "Отменять запись не нужно, я приду")
    assert "cancel" not in result.tags


def test_guard_cancel_then_negation(engine: OfflineEngine) -> None:
    result = run(engine, "хочу отменить запись, не нужно больше")
    assert result.tags == ["cancel"]


def test_complaint_waiting_for_staff(engine: OfflineEngine) -> None:
    result = run(engine, "Мы ждём уже 20 минут, где мастер??")
    assert "complaint" in result.tags


def test_question_opening_with_accepts(engine: OfflineEngine) -> None:
    result = run(engine, "Болит горло, вы сегодня принимаете? нужен терапевт")
    assert set(result.tags) == {"booking", "question"}


def test_question_condition_clause_is_not_own(engine: OfflineEngine) -> None:
    result = run(engine, "сколько стоит массаж, если брать курс из 10?")
    assert result.tags == ["price"]


def test_spam_trainer_offers_work(engine: OfflineEngine) -> None:
    result = run(engine, "Вам нужен тренер по боксу? Опыт 6 лет, есть дипломы")
    assert result.tags == ["spam"]


def test_service_specific_overlap_wins(engine: OfflineEngine) -> None:
    result = run(engine, "ноет зуб мудрости, можно удалить в пятницу?")
    assert result.service == "удаление зуба"
