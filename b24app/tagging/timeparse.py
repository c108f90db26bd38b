"""Dates and hours in a lead message, and which of them the client asks for.

The parser finds time expressions ("завтра в 15", "в пятницу после 18",
"30 АПРЕЛЯ ВЕЧЕРОМ", "13.01.2026", "с четверга на пятницу 19:00") and
groups them into fragments. Each fragment gets a role: the time the client
wants ("new"), the time of a visit already booked ("old"), something that
happened ("past"), or a bound or a habit that names no visit ("skip").

A hand-written parser is used rather than dateparser on the request path:
dateparser costs milliseconds per call and cannot tell an old visit from a
new one. dateparser still resolves English month names, which are rare.
"""

from __future__ import annotations

import calendar
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

from . import lexicon
from .text import Doc, Token

logger = logging.getLogger(__name__)

RELATIVE_DAYS = {
    "сегодня": 0,
    "завтра": 1,
    "послезавтра": 2,
    "today": 0,
    "tonight": 0,
    "tomorrow": 1,
}
WEEKDAYS = {
    "понедельник": 0,
    "вторник": 1,
    "среда": 2,
    "четверг": 3,
    "пятница": 4,
    "суббота": 5,
    "воскресенье": 6,
    "воскресение": 6,
    "monday": 0,
    "tuesday": 1,
    "wednesday": 2,
    "thursday": 3,
    "friday": 4,
    "saturday": 5,
    "sunday": 6,
}
WEEKDAY_ABBR = {"пн": 0, "вт": 1, "ср": 2, "чт": 3, "пт": 4, "сб": 5, "вс": 6}
MONTHS = {
    "январь": 1,
    "февраль": 2,
    "март": 3,
    "апрель": 4,
    "май": 5,
    "июнь": 6,
    "июль": 7,
    "август": 8,
    "сентябрь": 9,
    "октябрь": 10,
    "ноябрь": 11,
    "декабрь": 12,
}
ENGLISH_MONTHS = frozenset(
    {
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    }
)
HOUR_WORDS = {
    "один": 1,
    "два": 2,
    "три": 3,
    "четыре": 4,
    "пять": 5,
    "шесть": 6,
    "семь": 7,
    "восемь": 8,
    "девять": 9,
    "десять": 10,
    "одиннадцать": 11,
    "двенадцать": 12,
    "полдень": 12,
}
MORNING = frozenset({"утро", "утром", "утренний", "morning", "am"})
EVENING = frozenset({"вечер", "вечером", "вечерний", "pm", "evening", "tonight"})
DAYTIME = frozenset({"день", "днем", "обед", "afternoon"})
HOUR_PREPS = frozenset({"в", "к", "на", "после", "около", "с", "at", "from"})
HOUR_NOUNS = frozenset({"час", "часик", "ч", "утро", "вечер", "день", "ночь"})
DAY_ORDINAL_SUFFIXES = ("-го", "го", "-е", "е", "-ое", "ое", "-ого", "ого")
# Past forms that describe the present: "места остались?".
DURATION_UNITS = frozenset({"минута", "минутка", "мин", "секунда", "полчаса"})
STATE_VERBS = frozenset({"остаться", "освободиться", "появиться", "найтись"})
UNIT_ABBREVIATIONS = frozenset(
    {"см", "мм", "м", "кг", "км", "г", "руб", "р", "т", "тыс", "шт", "мл", "л"}
)
OTHER_SLOT_NOUNS = frozenset({"время", "день", "дата", "число", "час"})
GREETING_AFTER_C = frozenset(
    {"весь", "вас", "тебя", "наступающий", "праздник", "прошедший", "новый"}
)


@dataclass
class Fragment:
    """One time expression: a day, an hour, or both."""

    start: int
    end: int
    day: date | None = None
    hour: int | None = None
    minute: int = 0
    shift_days: int | None = None
    same_time: bool = False
    prep: str = ""
    role: str = "new"
    old_ref: bool = False
    skip: bool = False
    asap: bool = False

    @property
    def has_content(self) -> bool:
        return (
            self.day is not None
            or self.hour is not None
            or self.shift_days is not None
            or self.same_time
        )


@dataclass
class Component:
    index: int
    end: int
    day: date | None = None
    hour: int | None = None
    minute: int = 0
    period: str = ""
    shift_days: int | None = None
    same_time: bool = False
    skip: bool = False
    old_ref: bool = False
    asap: bool = False
    after: bool = False


def _next_weekday(today: date, weekday: int, next_week: bool) -> date:
    if next_week:
        monday = today + timedelta(days=7 - today.weekday())
        return monday + timedelta(days=weekday)
    ahead = (weekday - today.weekday()) % 7
    return today + timedelta(days=ahead or 7)


def _add_months(today: date, months: int) -> date:
    month = today.month - 1 + months
    year = today.year + month // 12
    month = month % 12 + 1
    return date(year, month, min(today.day, calendar.monthrange(year, month)[1]))


def _roll_year(today: date, month: int, day: int, year: int | None) -> date | None:
    if year is not None:
        try:
            return date(year, month, day)
        except ValueError:
            return None
    for candidate_year in (today.year, today.year + 1):
        try:
            candidate = date(candidate_year, month, day)
        except ValueError:
            continue
        if candidate >= today:
            return candidate
    return None


def _day_of_month(today: date, day: int) -> date | None:
    year, month = today.year, today.month
    for _ in range(2):
        if 1 <= day <= calendar.monthrange(year, month)[1]:
            candidate = date(year, month, day)
            if candidate >= today:
                return candidate
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return None


def _int(text: str) -> int | None:
    digits = ""
    for ch in text:
        if ch.isdigit():
            digits += ch
        else:
            break
    return int(digits) if digits else None


@lru_cache(maxsize=512)
def _english_date(text: str, base: date) -> date | None:
    """Resolve "March 8" style dates; imported lazily, as it is slow to load."""
    import dateparser

    parsed = dateparser.parse(
        text,
        languages=["en"],
        settings={
            "RELATIVE_BASE": datetime(base.year, base.month, base.day),
            "PREFER_DATES_FROM": "future",
        },
    )
    return parsed.date() if parsed else None


class _Scanner:
    def __init__(self, doc: Doc, today: date) -> None:
        self.doc = doc
        self.tokens = doc.tokens
        self.today = today
        self.components: list[Component] = []

    def word(self, i: int) -> Token | None:
        if 0 <= i < len(self.tokens):
            return self.tokens[i]
        return None

    def norm(self, i: int) -> str:
        tok = self.word(i)
        return tok.norm if tok else ""

    def lemma(self, i: int) -> str:
        tok = self.word(i)
        return tok.lemma if tok else ""

    def scan(self) -> list[Component]:
        i = 0
        while i < len(self.tokens):
            step = self._at(i)
            i += max(step, 1)
        return self.components

    def _add(self, comp: Component) -> int:
        self.components.append(comp)
        return comp.end - comp.index + 1

    def _at(self, i: int) -> int:
        tok = self.tokens[i]
        norm, lemma = tok.norm, tok.lemma

        if tok.kind == "word":
            if norm in RELATIVE_DAYS:
                return self._add(
                    Component(i, i, day=self.today + timedelta(RELATIVE_DAYS[norm]))
                )
            if lemma in lexicon.DAY_ADJECTIVES:
                offset = lexicon.DAY_ADJECTIVES[lemma]
                is_day = self.lemma(i + 1) in ("день", "число")
                return self._add(
                    Component(
                        i,
                        i + 1 if is_day else i,
                        day=self.today + timedelta(offset),
                        old_ref=not is_day,
                    )
                )
            if (
                norm == "сейчас"
                and self.norm(i - 1) == "прямо"
                or (norm == "now" and self.norm(i - 1) == "right")
            ):
                return self._add(Component(i, i, day=self.today, asap=True))
            if (
                norm == "как"
                and self.norm(i + 1) == "можно"
                and self.lemma(i + 2)
                in ("скорый", "ранний", "быстрый", "скорее", "раньше", "быстрее")
            ):
                return self._add(Component(i, i + 2, day=self.today, asap=True))
            if lemma in WEEKDAYS or (
                norm in WEEKDAY_ABBR and self.norm(i - 1) in ("в", "на", "с", "до")
            ):
                return self._weekday(i, WEEKDAYS.get(lemma, WEEKDAY_ABBR.get(norm)))
            if lemma == "через":
                return self._after(i)
            if norm == "на":
                shift = self._shift(i)
                if shift:
                    return shift
            if (
                norm in ("то", "тот")
                and self.norm(i + 1) == "же"
                and self.lemma(i + 2) in ("время", "час")
            ):
                return self._add(Component(i, i + 2, same_time=True))
            if norm == "тоже" and self.lemma(i + 1) == "время":
                return self._add(Component(i, i + 1, same_time=True))
            if norm == "same" and self.norm(i + 1) == "time":
                return self._add(Component(i, i + 1, same_time=True))
            if lemma in HOUR_WORDS and self._hour_word_context(i):
                return self._add(self._hour(i, HOUR_WORDS[lemma], 0))
            if tok.latin and norm in ENGLISH_MONTHS:
                return self._english_month(i)
            period = self._period(i)
            if period:
                return self._add(Component(i, i, period=period))
            return 1

        if tok.kind == "time":
            hour, minute = (int(p) for p in norm.split(":"))
            if hour <= 23 and minute < 60 and self.norm(i - 1) not in ("-", "–"):
                return self._add(self._hour(i, hour, minute))
            return 1

        if tok.kind == "date":
            return self._numeric_date(i)

        if tok.kind == "num":
            return self._number(i)
        if tok.kind == "alnum":
            m = re.fullmatch(r"(\d{1,2})(am|pm)", norm)
            if m and int(m.group(1)) <= 12:
                period = "evening" if m.group(2) == "pm" else "morning"
                comp = self._hour(i, int(m.group(1)), 0)
                comp.period = comp.period or period
                return self._add(comp)
        return 1

    def _weekday(self, i: int, weekday: int) -> int:
        tok = self.tokens[i]
        prev = self.lemma(i - 1)
        recurring = (tok.has("plur") and tok.has("datv")) or prev in (
            "по",
            "каждый",
        )
        next_week = prev == "следующий" or any(
            self.lemma(j) == "следующий" and self.lemma(j + 1) == "неделя"
            for j in range(i - 5, i)
        )
        day = _next_weekday(self.today, weekday, next_week)
        return self._add(Component(i, i, day=day, skip=recurring))

    def _after(self, i: int) -> int:
        count_tok = self.word(i + 1)
        if count_tok is None:
            return 1
        n, unit_i = 1, i + 1
        if count_tok.kind == "num":
            n = _int(count_tok.norm) or 1
            unit_i = i + 2
        elif count_tok.lemma in ("пара", "пару"):
            n, unit_i = 2, i + 2
        unit = self.lemma(unit_i)
        if self.lemma(unit_i + 1) == "после":
            # "через 4 дня после маникюра" counts from an event, not from today.
            return unit_i - i + 1
        if unit == "день":
            days = n + 1 if n == 1 and count_tok.kind != "num" else n
        elif unit == "неделя":
            days = 7 * n
        elif unit == "месяц":
            day = _add_months(self.today, n)
            return self._add(Component(i, unit_i, day=day))
        else:
            return 1
        return self._add(Component(i, unit_i, day=self.today + timedelta(days=days)))

    def _shift(self, i: int) -> int:
        """ "на день позже", "на неделю", "на 2 дня раньше" (moves a visit)."""
        j = i + 1
        n = 1
        tok = self.word(j)
        if tok is not None and tok.kind == "num":
            n = _int(tok.norm) or 1
            j += 1
        unit = self.lemma(j)
        if unit not in ("день", "неделя"):
            return 0
        direction = self.lemma(j + 1)
        days = n * (7 if unit == "неделя" else 1)
        if direction in ("ранний", "раньше"):
            days = -days
        elif direction not in ("поздний", "позже", "вперед"):
            if unit != "неделя":
                return 0
        end = j + 1 if direction in ("ранний", "раньше", "поздний", "позже") else j
        self._add(Component(i, end, shift_days=days))
        return end - i + 1

    def _period(self, i: int) -> str:
        tok = self.tokens[i]
        lemma = tok.lemma
        if self.lemma(i - 1) in ("добрый", "доброе", "good"):
            return ""
        if lemma in MORNING or tok.norm in MORNING:
            return "morning"
        if lemma in EVENING or tok.norm in EVENING:
            return "evening"
        if lemma == "обед" or tok.norm == "днем":
            return "day"
        return ""

    def _hour_word_context(self, i: int) -> bool:
        prev, nxt = self.lemma(i - 1), self.lemma(i + 1)
        if self.lemma(i) == "один" and nxt == "день":
            # "всё в один день" is a count of days, not one o'clock.
            return False
        if nxt in HOUR_NOUNS or prev in ("час", "часик"):
            return True
        if prev in ("в", "на", "к", "около") and self.lemma(i - 2) in ("час", "часик"):
            return True
        return self.lemma(i) == "полдень" and prev in ("в", "к", "после")

    def _hour(
        self, i: int, hour: int, minute: int, last: int | None = None
    ) -> Component:
        """Build the hour that starts at token ``i`` and whose digits end at
        ``last`` (``i`` unless the minutes were dictated apart)."""
        end = i if last is None else last
        period = ""
        for j in (end + 1, end + 2):
            lemma = self.lemma(j)
            if lemma in HOUR_NOUNS and lemma not in ("утро", "вечер", "день", "ночь"):
                end = j
                continue
            if lemma in ("утро", "am"):
                period, end = "morning", j
            elif lemma in ("вечер", "pm", "ночь") or (lemma == "день" and hour < 12):
                period, end = "evening", j
            break
        # "13-14", "08:00-10:00": the range end is not a second request.
        if self.norm(end + 1) in ("-", "–") and self.word(end + 2) is not None:
            nxt = self.tokens[end + 2]
            if nxt.kind in ("num", "time"):
                end += 2
        after = self.lemma(i - 1) == "после" or (
            self.lemma(i - 2) == "после" and self.lemma(i - 1) in ("час", "часик")
        )
        return Component(i, end, hour=hour, minute=minute, period=period, after=after)

    def _numeric_date(self, i: int) -> int:
        parts = self.tokens[i].norm.split(".")
        first, second = int(parts[0]), int(parts[1])
        year = None
        if len(parts) == 3:
            year = int(parts[2])
            year = year + 2000 if year < 100 else year
        prev = self.lemma(i - 1)
        if (
            year is None
            and prev in ("в", "к", "после", "около")
            and first <= 23
            and second in (0, 15, 30, 45)
        ):
            return self._add(self._hour(i, first, second))
        if not (1 <= first <= 31 and 1 <= second <= 12):
            return 1
        day = _roll_year(self.today, second, first, year)
        if day is None:
            return 1
        return self._add(Component(i, i, day=day))

    def _number(self, i: int) -> int:
        tok = self.tokens[i]
        value = _int(tok.norm)
        if value is None:
            return 1
        suffix = tok.norm[len(str(value)) :]
        nxt = self.word(i + 1)
        nxt_lemma = nxt.lemma if nxt else ""

        if nxt_lemma in MONTHS and not suffix.endswith(("й", "ый", "ий")):
            day = _roll_year(self.today, MONTHS[nxt_lemma], value, self._year_after(i))
            if day is None:
                return 1
            end = i + 1
            if self.word(i + 2) is not None and self.tokens[i + 2].kind == "num":
                if len(self.tokens[i + 2].norm) == 4:
                    end = i + 2
            return self._add(Component(i, end, day=day))
        if nxt is not None and nxt.latin and nxt.norm in ENGLISH_MONTHS:
            return self._english_month(i)
        if suffix and suffix.lstrip("-") in {
            s.lstrip("-") for s in DAY_ORDINAL_SUFFIXES
        }:
            if nxt is None or nxt.pos != "NOUN" or nxt_lemma == "число":
                day = _day_of_month(self.today, value)
                if day is not None:
                    return self._add(Component(i, i, day=day))
            return 1
        if suffix:
            return 1
        if value > 23 or len(tok.norm) > 2:
            return 1
        prev = self.lemma(i - 1)
        prev2 = self.lemma(i - 2)
        if self.norm(i - 1) in ("-", "–"):
            return 1
        nxt_is_time_word = nxt_lemma in HOUR_NOUNS or nxt_lemma in (
            "утро",
            "вечер",
            "am",
            "pm",
        )
        if nxt is not None and nxt.pos == "NOUN" and not nxt_is_time_word:
            # "2 стрижки", "10 занятий" count things. A noun in the
            # nominative singular cannot follow a count above one, so "в 17
            # стрижка" names the hour of the visit.
            names_visit = (
                prev in ("в", "к") and value > 1 and nxt.has("nomn") and nxt.has("sing")
            )
            if not names_visit:
                return 1
        if nxt is not None and nxt.norm in UNIT_ABBREVIATIONS:
            return 1
        if (
            nxt is not None
            and nxt.pos in ("ADJF", "NUMR")
            and nxt_lemma
            not in (
                "утренний",
                "вечерний",
            )
        ):
            return 1
        if prev in HOUR_PREPS and prev2 in DURATION_UNITS:
            # "опаздываю минут на 20" is a duration, not 20:00.
            return 1
        if prev in HOUR_PREPS or prev in ("час", "часик") or nxt_is_time_word:
            if prev == "до" or (prev in ("час", "часик") and prev2 == "до"):
                return 1
            minute = self._spoken_minute(i)
            if minute is not None:
                # "в 15 30": dictated "15:30".
                return self._add(self._hour(i, value, minute, last=i + 1))
            return self._add(self._hour(i, value, 0))
        return 1

    def _spoken_minute(self, i: int) -> int | None:
        """Minutes dictated after the hour at ``i`` ("15 30"), if any."""
        if i + 1 >= len(self.tokens):
            return None
        tok = self.tokens[i + 1]
        if tok.kind != "num" or len(tok.norm) != 2:
            return None
        after = self.word(i + 2)
        if after is not None and after.pos == "NOUN" and after.lemma not in HOUR_NOUNS:
            return None
        value = int(tok.norm)
        return value if value < 60 else None

    def _year_after(self, i: int) -> int | None:
        tok = self.word(i + 2)
        if tok is not None and tok.kind == "num" and len(tok.norm) == 4:
            return int(tok.norm)
        return None

    def _english_month(self, i: int) -> int:
        """Resolve "25 March" (``i`` at the number) or "March 25" (at the month)."""
        tok = self.tokens[i]
        nxt = self.word(i + 1)
        if tok.kind == "num":
            start, end = i, i + 1
        elif nxt is not None and nxt.kind == "num":
            start, end = i, i + 1
        else:
            return 1
        text = " ".join(t.norm for t in self.tokens[start : end + 1])
        day = _english_date(text, self.today)
        if day is None:
            return 1
        return self._add(Component(start, end, day=day))


def _group(doc: Doc, comps: list[Component]) -> list[Fragment]:
    fragments: list[Fragment] = []
    current: Fragment | None = None
    periods: dict[int, str] = {}
    for comp in comps:
        starts_new = (
            current is None
            or comp.index - current.end > 3
            or doc.tokens[comp.index].sent != doc.tokens[current.end].sent
            or (comp.day is not None and current.day is not None)
            or (comp.hour is not None and current.hour is not None)
            or (comp.shift_days is not None and current.has_content)
            or (current is not None and _new_hour_for_old(doc, current, comp))
        )
        if starts_new:
            if comp.period and comp.day is None and comp.hour is None:
                # A bare "утром" only colours nearby hours.
                if current is not None and comp.index - current.end <= 3:
                    periods[id(current)] = periods.get(id(current)) or comp.period
                continue
            current = Fragment(start=comp.index, end=comp.end)
            fragments.append(current)
        current.end = max(current.end, comp.end)
        if comp.day is not None:
            current.day = comp.day
        if comp.hour is not None:
            current.hour = comp.hour
            current.minute = comp.minute
            periods.setdefault(id(current), comp.period)
            if comp.period:
                periods[id(current)] = comp.period
        if comp.period:
            periods[id(current)] = periods.get(id(current)) or comp.period
        if comp.shift_days is not None:
            current.shift_days = comp.shift_days
        current.same_time = current.same_time or comp.same_time
        current.skip = current.skip or comp.skip
        current.old_ref = current.old_ref or comp.old_ref
        current.asap = current.asap or comp.asap

    for frag in fragments:
        if frag.hour is not None:
            frag.hour = _to_24h(
                frag.hour, periods.get(id(frag), ""), _sentence_period(doc, frag)
            )
        prev = doc.tokens[frag.start - 1] if frag.start > 0 else None
        frag.prep = prev.lemma if prev is not None and prev.kind == "word" else ""
    return [f for f in fragments if f.has_content]


def _new_hour_for_old(doc: Doc, current: Fragment, comp: Component) -> bool:
    """ "перенести завтрашнюю тренировку на 19:00": the hour after "на" is
    the new time of the visit named just before it, not part of it."""
    if not current.old_ref or comp.hour is None or comp.index == 0:
        return False
    if doc.tokens[comp.index - 1].norm != "на":
        return False
    sentence = _sentence_tokens(doc, current.start)
    return any(
        t.lemma in lexicon.RESCHEDULE_VERBS and t.index < current.start
        for t in sentence
    )


def _sentence_period(doc: Doc, frag: Fragment) -> str:
    sent = doc.tokens[frag.start].sent
    for tok in doc.sentences[sent] if sent < len(doc.sentences) else []:
        if tok.lemma in ("утро", "утренний", "утром"):
            prev = doc.tokens[tok.index - 1] if tok.index else None
            if prev is None or prev.lemma not in ("добрый", "доброе"):
                return "morning"
    return ""


def _to_24h(hour: int, period: str, sentence_period: str) -> int:
    if hour >= 12:
        return hour
    if period == "evening":
        return hour + 12
    if period == "morning":
        return hour
    if 1 <= hour <= 7 and sentence_period != "morning":
        return hour + 12
    return hour


def _clause_tokens(doc: Doc, index: int) -> list[Token]:
    clause = doc.tokens[index].clause
    for tokens in doc.clauses:
        if tokens and tokens[0].clause == clause:
            return tokens
    return []


def _sentence_tokens(doc: Doc, index: int) -> list[Token]:
    sent = doc.tokens[index].sent
    return doc.sentences[sent] if sent < len(doc.sentences) else []


def _is_cancel_verb(tok: Token) -> bool:
    return tok.lemma in lexicon.CANCEL_VERBS and not tok.has("PRTF")


def _negated_come(tokens: list[Token], i: int) -> bool:
    tok = tokens[i]
    if tok.lemma not in lexicon.COME_VERBS and tok.lemma not in (
        "успевать",
        "успеть",
        "мочь",
        "смочь",
        "получиться",
    ):
        return False
    window = [t.norm for t in tokens[max(0, i - 3) : i]]
    if "не" not in window:
        return False
    if tok.lemma in ("мочь", "смочь"):
        # "не могу дозвониться" is about reaching the business, while "не
        # смогу прийти" and "не смогу в пятницу" give up a visit.
        nxt = next((t for t in tokens[i + 1 :] if t.is_word), None)
        if (
            nxt is not None
            and nxt.pos == "INFN"
            and nxt.lemma not in lexicon.COME_VERBS | lexicon.VISIT_VERBS
        ):
            return False
    return True


def _mentions_change(doc: Doc) -> bool:
    """A cancel verb or a negated visit verb anywhere in the message."""
    tokens = doc.tokens
    return any(
        t.is_word and (_is_cancel_verb(t) or _negated_come(tokens, i))
        for i, t in enumerate(tokens)
    )


def _assign_role(doc: Doc, frag: Fragment, reschedule: bool) -> str:
    tokens = doc.tokens
    if frag.skip or frag.prep in ("до", "until", "before", "по"):
        return "skip"
    if frag.prep == "с" and frag.day is not None:
        nxt = tokens[frag.end + 1] if frag.end + 1 < len(tokens) else None
        if nxt is not None and nxt.lemma in GREETING_AFTER_C:
            return "skip"
    if frag.old_ref and (reschedule or _mentions_change(doc)):
        # "сегодняшний сайкл" names a booked visit only when it is moved or
        # cancelled; otherwise it is the class the client wants.
        return "old"
    if reschedule and frag.prep in ("с", "со", "from"):
        return "old"

    clause = _clause_tokens(doc, frag.start)
    if _follows_move_verb(clause, frag):
        # "я записан на понедельник, можно перенести на среду" without the
        # comma: the day after the move verb is the new one.
        return "new"
    if any(t.lemma in ("записать", "записаться") and t.has("past") for t in clause):
        return "old"

    # A day the client refuses in its own clause ("на сб не успеваю") is the
    # old one even after "перенести".
    for pos, tok in enumerate(clause):
        if _is_cancel_verb(tok) or _negated_come(clause, pos):
            return "old"

    sentence = _sentence_tokens(doc, frag.start)
    before = [t for t in sentence if t.index < frag.start]
    if any(t.lemma in lexicon.RESCHEDULE_VERBS for t in before):
        return "new"
    lemmas = {t.lemma for t in clause}
    norms = {t.norm for t in clause}
    if any(t.lemma in ("записать", "записаться") and t.has("past") for t in clause):
        return "old"
    near = [t for t in clause if abs(t.index - frag.start) <= 6]
    if {t.lemma for t in near} & {"вчера", "позавчера", "прошлый"}:
        return "past"
    nearest = _nearest_predicate(clause, frag)
    if (
        nearest is not None
        and (nearest.has("past") or nearest.has("PastAlt"))
        and nearest.lemma not in STATE_VERBS
        and nearest.lemma not in lexicon.HOURS_WORDS
    ):
        wish = nearest.lemma in lexicon.WANT or "бы" in norms
        if not wish:
            return "past"

    if (
        "у" in norms
        and norms & {"меня", "нас"}
        and (
            lemmas & {"запись", "прием", "визит", "тренировка", "занятие"}
            or _has_service_noun(clause)
        )
    ):
        before_lemmas = {t.lemma for t in clause if t.index < frag.start}
        if not before_lemmas & (lexicon.WANT | {"можно", "давать", "давайте"}):
            return "old"
    return "new"


def _follows_move_verb(clause: list[Token], frag: Fragment) -> bool:
    """Return True when a move verb, and no "записан" after it, comes before
    the fragment in its clause."""
    last = None
    for tok in clause:
        if tok.index >= frag.start:
            break
        if tok.lemma in lexicon.RESCHEDULE_VERBS:
            last = "move"
        elif tok.lemma in ("записать", "записаться") and tok.has("past"):
            last = "booked"
    return last == "move" and frag.prep in ("на", "в", "во")


def _has_service_noun(clause: list[Token]) -> bool:
    from .services import match_services

    return bool(match_services(clause))


def _nearest_predicate(clause: list[Token], frag: Fragment) -> Token | None:
    best: Token | None = None
    best_distance = 99
    for tok in clause:
        if tok.pos not in ("VERB", "INFN", "PRTS", "PRED") and not tok.has("PastAlt"):
            continue
        if frag.start <= tok.index <= frag.end:
            continue
        distance = min(abs(tok.index - frag.start), abs(tok.index - frag.end))
        if distance < best_distance and distance <= 6:
            best, best_distance = tok, distance
    return best


def find_fragments(doc: Doc, today: date, reschedule: bool) -> list[Fragment]:
    """Find all time fragments of the message and assign their roles."""
    comps = _Scanner(doc, today).scan()
    fragments = _group(doc, comps)
    for frag in fragments:
        frag.role = _assign_role(doc, frag, reschedule)
    if reschedule:
        _mark_moved_from(doc, fragments)
    return fragments


def _mark_moved_from(doc: Doc, fragments: list[Fragment]) -> None:
    """Mark the booked day in a move written without "с": "перенести приём
    18 марта на 25 марта", "тренировку в субботу перенесём на воскресенье",
    "перенести запись на завтра на другое время"."""
    for sentence in doc.sentences:
        if not sentence:
            continue
        first, last = sentence[0].index, sentence[-1].index
        days = [
            f
            for f in fragments
            if f.role == "new" and f.day is not None and first <= f.start <= last
        ]
        if len(days) >= 2 and days[-1].prep == "на":
            for frag in days[:-1]:
                if frag.prep != "на":
                    frag.role = "old"

        # "тренировку завтра в 8 можно перенести на 10", "запись на завтра
        # с 12 на 15": a later bare hour after "на" replaces the hour of the
        # day named before it.
        hours = [
            f
            for f in fragments
            if f.role == "new"
            and f.day is None
            and f.hour is not None
            and f.prep == "на"
            and first <= f.start <= last
        ]
        if hours:
            for frag in days:
                if frag.hour is not None and frag.end < hours[-1].start:
                    frag.role = "old"

        # "на другое время" leaves the new slot to the business, so a day
        # before it names the booked visit.
        other = next(
            (
                t
                for t in sentence
                if t.lemma == "другой"
                and t.index + 1 <= last
                and doc.tokens[t.index + 1].lemma in OTHER_SLOT_NOUNS
            ),
            None,
        )
        if other is not None:
            for frag in days:
                if frag.end < other.index:
                    frag.role = "old"


@dataclass
class DesiredTime:
    day: date
    hour: int | None
    minute: int
    asap: bool = False


def choose_desired(fragments: list[Fragment]) -> DesiredTime | None:
    """Pick the visit time the client requests from the "new" fragments."""
    new = [f for f in fragments if f.role == "new"]
    old = [f for f in fragments if f.role == "old" and f.day is not None]
    old_first = old[0] if old else None

    chosen_day: date | None = None
    chosen: Fragment | None = None
    for frag in new:
        if frag.day is not None:
            chosen_day, chosen = frag.day, frag
            break
        if frag.shift_days is not None and old_first is not None:
            chosen_day = old_first.day + timedelta(days=frag.shift_days)
            chosen = frag
            break

    hour: int | None = None
    minute = 0
    if chosen is not None and chosen.hour is not None:
        hour, minute = chosen.hour, chosen.minute
    if hour is None:
        for frag in new:
            if frag.hour is None or frag is chosen:
                continue
            if frag.day is None or frag.day == chosen_day:
                hour, minute = frag.hour, frag.minute
                break
    same_time = any(f.same_time for f in new)

    # NOTE: an hour with no day ("можно в 10?") resolves only against a booked
    # visit. Otherwise the result is None, because today or tomorrow is a guess.
    if chosen_day is None and old_first is not None:
        if hour is not None or same_time:
            chosen_day = old_first.day
    if chosen_day is None:
        return None
    if hour is None and same_time and old_first is not None:
        old_hour = _old_hour([f for f in fragments if f.role == "old"], old_first.day)
        if old_hour is not None:
            hour, minute = old_hour
    asap = chosen.asap if chosen is not None else False
    return DesiredTime(day=chosen_day, hour=hour, minute=minute, asap=asap)


def _old_hour(old: list[Fragment], day: date | None) -> tuple[int, int] | None:
    """Return an hour given apart from the booked day: "с завтра ..., я записана на
    14:00"."""
    for frag in old:
        if frag.hour is not None and (frag.day is None or frag.day == day):
            return frag.hour, frag.minute
    return None


def choose_appointment(
    fragments: list[Fragment], include_new: bool = False
) -> DesiredTime | None:
    """Pick the start of the booked visit that the client cancels or moves.

    The first "old" fragment with a day wins, or with ``include_new`` the
    first "new" one when no fragment is "old". An hour given apart from the
    day joins it. An hour with no day ("отмените запись на 15:00") gives no
    result, because the booked day is a guess.
    """
    old = [f for f in fragments if f.role == "old"]
    if include_new and not any(f.day is not None for f in old):
        old = [f for f in fragments if f.role == "new"]
    first = next((f for f in old if f.day is not None), None)
    if first is None:
        return None
    if first.hour is not None:
        hour = (first.hour, first.minute)
    else:
        hour = _old_hour(old, first.day)
    if hour is None:
        return DesiredTime(day=first.day, hour=None, minute=0)
    return DesiredTime(day=first.day, hour=hour[0], minute=hour[1])
