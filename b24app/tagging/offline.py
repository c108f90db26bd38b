"""Offline lead classifier: morphology-aware rules, no network.

Each intent collects weighted cues found on lemmas: "запишите" and
"записаться" are one lemma family, "не смогу прийти" is a negated visit
verb. The weights add up to a score, and a logistic curve turns the score
into the confidence shown to managers. Cues are general patterns (word
families, negation, word order, the role of a date in the sentence), not
phrases copied from sample messages.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

from . import lexicon
from .services import match_services, pick_service
from .text import Doc, Token, analyse, resources
from .timeparse import (
    MONTHS,
    RELATIVE_DAYS,
    WEEKDAYS,
    DesiredTime,
    Fragment,
    choose_appointment,
    choose_desired,
    find_fragments,
)
from .types import INTENTS, LOW_CONFIDENCE, RU_LABELS, Classification

logger = logging.getLogger(__name__)

# Score at which a tag is chosen (confidence 0.5) and the slope of the curve.
THRESHOLD = 1.0
SLOPE = 2.2
NEUTRAL_WORDS = lexicon.GREETING_LEMMAS | {"актуально", "актуальный", "алло"}
FUNCTION_POS = frozenset({"PREP", "CONJ", "PRCL", "NPRO", "INTJ", ""})
KEYBOARD_ROWS = (
    "йцукенгшщзхъ",
    "фывапролджэ",
    "ячсмитьбю",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
)
TEST_WORDS = frozenset({"test", "тест", "проверка", "asdf", "qwerty", "йцукен"})
SLOT_CONTEXT = frozenset(
    {
        "есть",
        "свободный",
        "свободно",
        "близкий",
        "нет",
        "остаться",
        "оставаться",
        "найтись",
        "найти",
    }
)
PAID_VERBS = frozenset({"платить", "заплатить", "отдать"})
TIME_LEMMAS = frozenset(WEEKDAYS) | frozenset(MONTHS) | frozenset(RELATIVE_DAYS)
NEGATING_MODALS = frozenset(
    {"быть", "хотеть", "стать", "собираться", "нужно", "надо", "нужный"}
)
CHILD_WORDS = frozenset({"ребенок", "ребёнок", "сын", "дочь", "дочка", "малыш"})
INSURANCE_WORDS = frozenset({"дмс", "страховка", "страховой", "полис", "insurance"})
FIX_VERBS = frozenset({"исправить", "переделать", "поправить", "гарантия"})
# "что мне делать??", "можно переделать бесплатно?" ask for a remedy and
# belong to the complaint.
REMEDY_VERBS = frozenset(
    {"делать", "переделать", "исправить", "поправить", "вернуть", "компенсировать"}
)
RHETORICAL_SHORT = frozenset({"это", "вообще", "как", "так", "что", "за", "ок"})
DEFER_WORDS = frozenset({"пока", "сначала", "просто", "ещё", "еще", "сперва"})
LATE_VERBS = frozenset({"опаздывать", "опоздать", "задерживаться", "задержаться"})
# Words about a visit itself keep a message on topic even when no rule
# fires ("не отменяйте, я опоздаю").
VISIT_CHANGE_WORDS = (
    lexicon.BOOK_VERBS | lexicon.CANCEL_VERBS | lexicon.RESCHEDULE_VERBS | LATE_VERBS
)
# "не могу дозвониться", "не берёте трубку": the client failed to reach the
# business, which does not show what they want.
REACH_VERBS = frozenset({"дозвониться", "дозваниваться", "достучаться"})
UNANSWERED_OBJECTS = frozenset({"трубка", "телефон"})
CALL_UNITS = frozenset({"час", "полчаса", "минута"})
# "наберите меня": a call request only with the client as the object, since
# "набрать массу" is a fitness goal.
DIAL_VERBS = frozenset({"набрать", "набирать"})
# A call-back request about a symptom or an injury is a request to see a doctor.
SYMPTOM_LEMMAS = (
    lexicon.ACUTE_WORDS
    | lexicon.PAIN_WORDS
    | {
        "кровь",
        "температура",
        "травма",
        "давление",
        "плохо",
    }
)
# "снимите меня с записи", "уберите мою запись": a cancellation without a
# cancel verb.
REMOVE_VERBS = frozenset({"снять", "снимать", "убрать", "удалить", "вычеркнуть"})
BOOKED_NOUNS = frozenset({"запись", "занятие", "тренировка", "визит", "прием"})
SHIFT_COMPARATIVES = frozenset({"поздний", "ранний"})
WAITING_WORDS = frozenset({"где", "ждать", "стоять", "подождать", "стоим", "стою"})
PITCH_VERBS = frozenset(
    {"мочь", "сделать", "настроить", "привести", "разработать", "предложить"}
)
RULE_WORDS = frozenset({"обязательный", "обязательно", "предварительный"})
REPEAT_MARKERS = frozenset({"опять", "снова", "второй", "третий", "который"})
B2B_OBJECTS = frozenset(
    {
        "сайт",
        "реклама",
        "клиент",
        "продажа",
        "трафик",
        "поток",
        "отзыв",
        "лендинг",
        "бот",
        "товар",
        "продукция",
        "расходник",
        "перчатка",
        "косметика",
        "протеин",
        "оборудование",
    }
)


def confidence_from_score(score: float) -> float:
    """Logistic map from cue score to a probability-like confidence."""
    return 1.0 / (1.0 + math.exp(-SLOPE * (score - THRESHOLD)))


@dataclass
class Cue:
    tag: str
    weight: float
    start: int
    end: int
    label: str
    soft: bool = False


@dataclass
class _State:
    doc: Doc
    today: date
    cues: list[Cue] = field(default_factory=list)
    fragments: list[Fragment] = field(default_factory=list)
    services: list = field(default_factory=list)
    pending_need: Token | None = None

    def add(
        self,
        tag: str,
        weight: float,
        tokens: list[Token] | Token,
        soft: bool = False,
    ) -> None:
        if isinstance(tokens, Token):
            tokens = [tokens]
        start = min(t.index for t in tokens)
        end = max(t.index for t in tokens)
        label = " ".join(t.text for t in tokens if t.kind != "punct")[:40]
        self.cues.append(Cue(tag, weight, start, end, label, soft))

    def score(self, tag: str) -> float:
        """Sum the cue weights, counting all but the strongest at half weight."""
        best = total = 0.0
        for cue in self.cues:
            if cue.tag == tag:
                total += cue.weight
                best = max(best, cue.weight)
        return best + 0.5 * (total - best)

    def drop(self, tag: str, soft_only: bool = False) -> None:
        self.cues = [
            c for c in self.cues if not (c.tag == tag and (c.soft or not soft_only))
        ]


def _needs_visit(state: _State) -> bool:
    """The needed thing is a doctor's visit or a consultation, which a
    client books, rather than a test whose price they ask."""
    if any(
        c.tag in ("reschedule", "cancel", "complaint", "spam") and c.weight >= THRESHOLD
        for c in state.cues
    ):
        return False
    need = state.pending_need
    clause = [
        t for t in state.doc.tokens if need is not None and t.clause == need.clause
    ]
    lemmas = {t.lemma for t in clause}
    return bool(
        lemmas & ({"консультация", "приём", "прием", "врач", "доктор"} | lexicon.STAFF)
        or any(
            m.name.startswith(("приём", "консультация", "вызов"))
            for m in state.services
            if clause and clause[0].index <= m.start <= clause[-1].index
        )
    )


def _inside_asap(state: _State, tok: Token) -> bool:
    """Return True for "можно" inside "как можно скорее", which sets a
    deadline and requests no slot."""
    return any(f.asap and f.start <= tok.index <= f.end for f in state.fragments)


def _words(tokens: list[Token]) -> list[Token]:
    return [t for t in tokens if t.kind == "word"]


def _negated(tokens: list[Token], tok: Token, span: int = 2) -> bool:
    """ "не" or "нельзя" right before the word (within ``span`` words of the
    same clause)."""
    i = tok.index
    seen = 0
    for other in reversed(tokens):
        if other.index >= i:
            continue
        if other.clause != tok.clause:
            break
        if not other.is_word:
            continue
        seen += 1
        if other.norm in ("не", "нельзя", "ни", "not", "don't", "cant", "can't"):
            return True
        if seen >= span:
            break
    return False


def _question_clause(sentence: list[Token]) -> int | None:
    """Clause that ends with the question mark, if the sentence has one."""
    last_word = None
    for tok in sentence:
        if tok.is_word:
            last_word = tok
        elif tok.kind == "punct" and "?" in tok.text and last_word is not None:
            return last_word.clause
    return None


def _asks(sentence: list[Token], tok: Token, is_question: bool) -> bool:
    """Whether ``tok`` stands in the asking part of a sentence: "мне нужно на
    наращивание, у вас есть мастер?" states a need before it asks."""
    if not is_question:
        return False
    clause = _question_clause(sentence)
    if clause is None or clause == tok.clause:
        return True
    return any(
        t.clause == tok.clause and t.lemma in lexicon.QUESTION_WORDS
        for t in sentence
        if t.is_word
    )


def _negated_after(words: list[Token], tok: Token) -> bool:
    """An infinitive negated by a later modal: "отменять не буду",
    "отменять запись не нужно"."""
    if tok.pos != "INFN":
        return False
    after = [t for t in words if t.index > tok.index and t.clause == tok.clause][:4]
    return any(
        first.norm == "не" and second.lemma in NEGATING_MODALS
        for first, second in zip(after, after[1:], strict=False)
    )


def _is_past(tok: Token) -> bool:
    return tok.has("past") and not tok.has("PRTF")


def _new_fragments_in(state: _State, sentence: list[Token]) -> list[Fragment]:
    if not sentence:
        return []
    first, last = sentence[0].index, sentence[-1].index
    return [
        f
        for f in state.fragments
        if f.role == "new" and first <= f.start <= last and (f.day or f.hour)
    ]


# --- cue finders ------------------------------------------------------------


def _booking_cues(state: _State) -> None:
    doc = state.doc
    for sentence in doc.sentences:
        words = _words(sentence)
        lemmas = {t.lemma for t in words}
        is_question = sentence[0].sent in doc.question_sentences
        changes = bool(
            lemmas & (lexicon.RESCHEDULE_VERBS | lexicon.CANCEL_VERBS)
        ) or any(
            t.lemma in REMOVE_VERBS and _removes_booking(words, i)
            for i, t in enumerate(words)
        )
        new_frags = _new_fragments_in(state, sentence)
        services = [
            m
            for m in state.services
            if sentence[0].index <= m.start <= sentence[-1].index
        ]
        hours_question = bool(lemmas & lexicon.HOURS_WORDS) and is_question

        for pos, tok in enumerate(words):
            lemma = tok.lemma
            if lemma in lexicon.BOOK_VERBS:
                if tok.has("PRTS") or tok.has("PRTF") or _is_past(tok):
                    continue
                if _negated(sentence, tok, span=3):
                    # "не записываться пока, просто узнать" defers a booking.
                    if not lemmas & DEFER_WORDS:
                        state.add("cancel", 1.5, tok)
                    continue
                if tok.pos == "INFN" and "ли" in lemmas and lemmas & lexicon.NEED:
                    # "нужно ли записываться заранее?" is a question about the rules.
                    continue
                state.add("booking", 2.0, tok)
            elif lemma == "принять" and tok.has("impr") and not _negated(sentence, tok):
                # "примите сегодня": the client asks to be seen.
                state.add("booking", 2.0, tok)
            elif lemma in ("book", "appoint", "reserv", "booking"):
                state.add("booking", 2.0, tok)
            elif (
                lemma == "sign" and pos + 1 < len(words) and words[pos + 1].norm == "up"
            ):
                state.add("booking", 2.0, tok)
            elif lemma == "запись" and not changes:
                window = {t.lemma for t in words[max(0, pos - 2) : pos]}
                if "без" in window or _removed_booking(words, pos):
                    continue
                # "нужна ли предварительная запись?" is a question about rules.
                if "ли" in lemmas and lemmas & (lexicon.NEED | RULE_WORDS):
                    continue
                if window & {"мой", "свой", "наш"} or any(_is_past(t) for t in words):
                    continue
                if {"у"} <= window or (
                    "у" in lemmas and lemmas & {"я", "мы"} and "есть" not in lemmas
                ):
                    continue
                state.add("booking", 1.2, tok)
            elif lemma in lexicon.WANT and not _negated(sentence, tok):
                # "хочу на маникюр, есть такая услуга?": only this clause
                # says what is wanted, and "есть" there is "there is".
                ahead = [
                    t
                    for t in words[pos + 1 : pos + 7]
                    if t.clause == tok.clause and t.norm != "есть"
                ]
                ahead_lemmas = {t.lemma for t in ahead}
                if ahead_lemmas & (lexicon.RESCHEDULE_VERBS | lexicon.CANCEL_VERBS):
                    continue
                first_verb = next((t for t in ahead if t.pos == "INFN"), None)
                if first_verb is not None and first_verb.lemma not in (
                    lexicon.VISIT_VERBS
                    | lexicon.BOOK_VERBS
                    | lexicon.COME_VERBS
                    | {"успеть"}
                ):
                    # "хочу пожаловаться", "хочу уточнить".
                    continue
                target = (
                    ahead_lemmas
                    & (lexicon.VISIT_VERBS | lexicon.BOOK_VERBS | {"успеть"})
                    or ahead_lemmas & lexicon.STAFF
                    or any(m.start > tok.index for m in services)
                    or any(f.start > tok.index for f in new_frags)
                )
                if target:
                    state.add("booking", 1.5, tok)
            elif lemma in lexicon.CAN and not _negated(sentence, tok):
                if changes or hours_question or _inside_asap(state, tok):
                    continue
                if new_frags:
                    state.add("booking", 1.5, [tok], soft=True)
                elif lemmas & lexicon.VISIT_VERBS and (
                    "когда" in lemmas or ("какой" in lemmas and "день" in lemmas)
                ):
                    state.add("booking", 1.5, [tok], soft=True)
            elif lemma in lexicon.SLOT_NOUNS and lemma != "запись":
                window = {t.lemma for t in words[max(0, pos - 6) : pos + 7]}
                if window & SLOT_CONTEXT:
                    if lemma == "время" and not (
                        window & {"свободный", "свободно", "близкий"} or new_frags
                    ):
                        continue
                    state.add("booking", 1.5, tok, soft=True)
            elif lemma in ("ничего", "что-нибудь", "что-то") and new_frags:
                if lemmas & {"есть", "нет"}:
                    state.add("booking", 1.5, tok, soft=True)
            elif (
                lemma in lexicon.NEED
                and not _asks(sentence, tok, is_question)
                and not changes
            ):
                if services or lemmas & {"врач", "доктор"}:
                    if new_frags:
                        state.add("booking", 1.2, tok, soft=True)
                    elif state.pending_need is None:
                        # Decided later: "нужен анализ крови" after a price
                        # question is the object of that question.
                        state.pending_need = tok
            elif (
                lemma == "попасть"
                and is_question
                and "как" in lemmas
                and not _negated(sentence, tok)
            ):
                # "как к нему попасть?" asks for a visit.
                state.add("booking", 1.5, tok, soft=True)
            elif lemma in ("slot", "avail", "available"):
                state.add("booking", 1.5, tok, soft=True)

        # A service and a wanted day in a plain statement ("анализы, завтра утром").
        if not is_question and services and new_frags and not changes:
            if not any(c.tag == "booking" for c in state.cues):
                state.add("booking", 1.0, sentence[0], soft=True)


def _price_cues(state: _State) -> None:
    doc = state.doc
    for sentence in doc.sentences:
        words = _words(sentence)
        is_question = sentence[0].sent in doc.question_sentences
        for pos, tok in enumerate(words):
            lemma = tok.lemma
            nxt = words[pos + 1] if pos + 1 < len(words) else None
            if lemma in lexicon.PRICE_WORDS:
                if (
                    lemma == "стоить"
                    and nxt is not None
                    and (nxt.norm == "ли" or nxt.pos == "INFN")
                ):
                    continue
                if lemma == "стоить" and (tok.has("1per") or tok.has("2per")):
                    # "мы у входа стоим" is "стоять" read as "стоить".
                    continue
                state.add("price", 2.0, tok)
            elif lemma == "стоять" and any(w.lemma == "сколько" for w in words):
                state.add("price", 2.0, tok)
            elif lemma == "сколько":
                prev = words[pos - 1].lemma if pos else ""
                if prev in ("до", "во", "в"):
                    continue
                if prev == "за":
                    # "за сколько отдаёте абонемент".
                    state.add("price", 2.0, [words[pos - 1], tok])
                    continue
                ahead = words[pos + 1 : pos + 4]
                verbs = [
                    t
                    for t in ahead
                    if t.pos in ("VERB", "INFN", "PRED")
                    and t.lemma
                    not in ("стоить", "стоять", "быть", "выйти", "обойтись", "брать")
                ]
                if verbs or any(t.lemma in lexicon.NON_MONEY_COUNT for t in ahead):
                    continue
                state.add("price", 1.5, tok)
            elif lemma in lexicon.PAY_WORDS and (tok.pos in ("INFN", "NOUN")):
                if is_question or any(w.lemma == "можно" for w in words):
                    state.add("price", 1.5, tok)
            elif lemma in lexicon.PAID_WORDS and is_question:
                state.add("price", 1.5, tok)
            elif lemma == "по" and nxt is not None and nxt.norm == "чем":
                state.add("price", 2.0, [tok, nxt])
            elif (
                lemma == "по" and nxt is not None and nxt.lemma in ("деньга", "деньги")
            ):
                # "сколько по времени и по деньгам".
                state.add("price", 2.0, [tok, nxt])
            elif (
                lemma == "сумма"
                and is_question
                and pos
                and (words[pos - 1].lemma in ("какой", "сколько"))
            ):
                state.add("price", 2.0, [words[pos - 1], tok])
            elif (
                lemma in ("бесплатный", "бесплатно")
                and is_question
                and not {t.lemma for t in words} & FIX_VERBS
            ):
                state.add("price", 1.5, tok)
            elif (lemma in INSURANCE_WORDS or tok.norm in INSURANCE_WORDS) and (
                is_question
            ):
                # Payment by insurance is a payment option.
                state.add("price", 1.5, tok)
            elif tok.norm == "how" and nxt is not None and nxt.norm == "much":
                state.add("price", 2.0, [tok, nxt])


def _reschedule_cues(state: _State) -> None:
    doc = state.doc
    for sentence in doc.sentences:
        words = _words(sentence)
        lemmas = {t.lemma for t in words}
        for tok in words:
            if tok.lemma in lexicon.RESCHEDULE_VERBS:
                if tok.has("3per") or (_is_past(tok) and not tok.has("1per")):
                    continue
                # "перезапишусь позже": the client will rebook on their own.
                if tok.lemma == "перезаписаться" and tok.has("1per"):
                    continue
                if (
                    tok.has("1per")
                    and tok.has("sing")
                    and lemmas & {"позже", "потом", "поздний"}
                ):
                    continue
                # "опять переносите мне запись": a reproach, not a request.
                if tok.has("2per") and tok.has("indc") and lemmas & REPEAT_MARKERS:
                    continue
                if _negated(sentence, tok):
                    continue
                state.add("reschedule", 2.0, tok)
            elif tok.lemma in lexicon.CHANGE_VERBS and lemmas & lexicon.CHANGE_OBJECTS:
                state.add("reschedule", 1.5, tok)

    # A booked visit and a new day without a cancel word: a move.
    old = [f for f in state.fragments if f.role == "old"]
    new = [
        f
        for f in state.fragments
        if f.role == "new" and (f.day or f.hour or f.shift_days or f.same_time)
    ]
    cancel_verbs = any(
        c.tag == "cancel" and c.weight >= 2.0 for c in state.cues
    ) or _has_cancel_verb(doc)
    if old and new and not cancel_verbs and state.score("reschedule") < 2.0:
        state.add("reschedule", 1.5, _fragment_tokens(doc, new[0]))
    elif old and not cancel_verbs and state.score("reschedule") < 1.5:
        # "у меня маникюр сегодня в 15, можно попозже?" is a request to move it.
        for sentence in doc.sentences:
            words = _words(sentence)
            lemmas = {t.lemma for t in words}
            shift = next((t for t in words if t.lemma in SHIFT_COMPARATIVES), None)
            if shift is not None and lemmas & lexicon.CAN:
                state.add("reschedule", 1.5, shift)
                break


def _fragment_tokens(doc: Doc, frag: Fragment) -> list[Token]:
    """The new time as the manager should see it: "на 12", "в субботу"."""
    start = frag.start
    if start and doc.tokens[start - 1].is_word and doc.tokens[start - 1].pos == "PREP":
        start -= 1
    return doc.tokens[start : frag.end + 1]


def _cancel_and_rebook(state: _State) -> None:
    """ "Отмените запись на 28-е и запишите на 30-е" moves the visit; booking
    someone else instead ("вместо меня запишите сестру") does not."""
    cancels = [c for c in state.cues if c.tag == "cancel" and c.weight >= 2.0]
    books = [c for c in state.cues if c.tag == "booking" and c.weight >= 2.0]
    if not cancels or not books:
        return
    lemmas = {t.lemma for t in state.doc.tokens if t.is_word}
    if lemmas & {"вместо", "другой", "сестра", "брат", "муж", "жена", "подруга"}:
        return
    new = [f for f in state.fragments if f.role == "new" and (f.day or f.shift_days)]
    if not new:
        return
    state.drop("cancel")
    state.drop("booking")
    state.add("reschedule", 2.0, _fragment_tokens(state.doc, new[0]))


def _removes_booking(words: list[Token], pos: int) -> bool:
    """Return True when the verb at ``pos`` takes a booked visit as its
    object within the next four words: "снимите меня с записи"."""
    verb = words[pos]
    return any(
        t.lemma in BOOKED_NOUNS and t.clause == verb.clause
        for t in words[pos + 1 : pos + 5]
    )


def _removed_booking(words: list[Token], pos: int) -> bool:
    """Return True when the booking noun at ``pos`` is the object of a
    removal verb."""
    return any(
        t.lemma in REMOVE_VERBS and _removes_booking(words, i)
        for i, t in enumerate(words[max(0, pos - 4) : pos], start=max(0, pos - 4))
    )


def _has_cancel_verb(doc: Doc) -> bool:
    return any(
        t.lemma in lexicon.CANCEL_VERBS and not t.has("PRTF") and not t.has("PRTS")
        for t in doc.tokens
        if t.is_word
    )


def _cancel_cues(state: _State) -> None:
    doc = state.doc
    for sentence in doc.sentences:
        words = _words(sentence)
        lemmas = {t.lemma for t in words}
        for pos, tok in enumerate(words):
            lemma = tok.lemma
            if lemma in lexicon.CANCEL_VERBS:
                if tok.has("PRTF") or tok.has("PRTS"):
                    continue
                if _is_past(tok):
                    # "тренер отменил": someone else cancelled; a complaint
                    # when staff did it.
                    if lemmas & lexicon.STAFF:
                        state.add("complaint", 1.0, tok)
                    continue
                if _negated(sentence, tok) or _negated_after(words, tok):
                    # "не хочу отменять", "отменять не буду": a move instead.
                    continue
                state.add("cancel", 2.0, tok)
            elif lemma in lexicon.COME_VERBS and _negated(sentence, tok, span=3):
                if _is_past(tok) or lemma in ("come", "make", "быть"):
                    continue
                if "больше" in lemmas:
                    state.add("cancel", 0.5, tok)
                    state.add("complaint", 0.5, tok)
                    continue
                state.add("cancel", 1.5, tok)
            elif lemma in REMOVE_VERBS and _removes_booking(words, pos):
                if not (_is_past(tok) or _negated(sentence, tok)):
                    state.add("cancel", 2.0, tok)
            elif lemma == "передумать":
                state.add("cancel", 1.5, tok)
            elif lemma in ("cancel", "cancelled", "canceled"):
                state.add("cancel", 2.0, tok)
            elif lemma in ("успевать", "успеть") and _negated(sentence, tok):
                # "не успеваю" alone gives up the visit; with a new day it moves it.
                state.add("cancel", 0.6, tok)
        if lemmas & {"won't", "cant", "can't"} and lemmas & {"come", "make"}:
            state.add("cancel", 1.5, words[0])


def _complaint_cues(state: _State) -> None:
    doc = state.doc
    all_lemmas = {t.lemma for t in doc.tokens if t.kind == "word"}
    blame = (
        "ваш" in all_lemmas
        or any(
            t.lemma in lexicon.PAST_SERVICE_VERBS and _is_past(t)
            for t in doc.tokens
            if t.is_word
        )
        or any(
            t.lemma == "после"
            and i + 1 < len(doc.tokens)
            and any(m.start == doc.tokens[i + 1].index for m in state.services)
            for i, t in enumerate(doc.tokens)
        )
    )
    for sentence in doc.sentences:
        words = _words(sentence)
        lemmas = {t.lemma for t in words}
        norms = [t.norm for t in words]
        text = " ".join(norms)
        is_question = sentence[0].sent in doc.question_sentences
        defect = 0.0
        for pos, tok in enumerate(words):
            lemma = tok.lemma
            if lemma in lexicon.COMPLAINT_STRONG:
                state.add("complaint", 2.0, tok)
            elif lemma in lexicon.COMPLAINT_MEDIUM:
                if tok.has("1per") or (lemma == "списать" and not _is_past(tok)):
                    continue
                if lemma == "обещать" and not _is_past(tok):
                    continue
                weight = 0.5 if lemma in ("невозможно", "ужас") else 1.0
                state.add("complaint", weight, tok)
            elif lemma in lexicon.FACILITY_COMPLAINT and not is_question:
                state.add("complaint", 1.0, tok)
            elif lemma == "плохо" and not is_question:
                state.add("complaint", 0.5, tok)
            elif lemma in lexicon.DEFECT_WORDS and blame and defect < 1.5:
                defect += 1.0
                state.add("complaint", 1.0, tok)
            elif lemma in lexicon.REFUND_VERBS and lemmas & lexicon.MONEY_WORDS:
                # Money back for unused months comes with a cancellation.
                leftover = "остаток" in lemmas or any(
                    t.norm.startswith(("оставш", "неиспользов")) for t in words
                )
                if not leftover:
                    state.add("complaint", 1.5, tok)
                else:
                    state.add("cancel", 1.5, tok)
            elif lemma == "возврат":
                state.add("complaint", 0.5, tok)
            elif lemma in ("исправить", "переделать") and lemmas & {
                "бесплатно",
                "гарантия",
            }:
                state.add("complaint", 1.0, tok)
            elif lemma == "ожидать" and _negated(sentence, tok):
                state.add("complaint", 1.0, tok)
            elif lemma == "норма" and _negated(sentence, tok) and not is_question:
                state.add("complaint", 1.0, tok)
            elif lemma in lexicon.STAFF:
                for later in words[pos + 1 : pos + 12]:
                    if _is_past(later) and _negated(sentence, later, span=3):
                        state.add("complaint", 1.0, [tok, later])
                        break
        for tok in sentence:
            if tok.kind == "other" and tok.text in lexicon.ANGRY_EMOJI:
                state.add("complaint", 1.0, tok)
        if "так и не" in text or re.search(r"до сих пор (не|нет|ничего)", text):
            state.add("complaint", 1.5, words[0])
        if "сколько можно" in text or "за такие деньги" in text:
            state.add("complaint", 1.5, words[0])
        if "даже не" in text or "никто не" in text:
            state.add("complaint", 1.0, words[0])
        if "без предупреждения" in text:
            state.add("complaint", 1.0, words[0])
        waits = [t for t in words if t.lemma in ("ждать", "сидеть") and t.has("1per")]
        if waits and "уже" in lemmas and lemmas & {"минута", "час"}:
            # "ждём уже 20 минут": the visit has not started on time.
            state.add("complaint", 1.5, waits[0])
        if lemmas & REPEAT_MARKERS and (lemmas & {"раз", "подряд", "опять", "снова"}):
            state.add("complaint", 0.5, words[0])
        if (
            is_question
            and lemmas & {"деньга", "деньги"}
            and (
                lemmas & {"платить", "заплатить"}
                or set(norms) & {"плачу", "платим", "платил", "платила", "заплатила"}
            )
        ):
            state.add("complaint", 1.0, words[0])
        if "почему" in lemmas and any(_is_past(t) and t.has("plur") for t in words):
            marks = sum(
                len(t.text) for t in sentence if t.kind == "punct" and t.text[0] in "?!"
            )
            state.add("complaint", 1.0 if marks >= 2 else 0.5, words[0])
        if "не работает" in text and not is_question:
            state.add("complaint", 0.5, words[0])
        indignant = [t for t in words if t.lemma in lexicon.INDIGNANT_WORDS]
        if (
            is_question
            and indignant
            and not _negated(sentence, indignant[0])
            and len(words) <= 5
            and all_lemmas & (lexicon.STAFF | PAID_VERBS)
        ):
            # "это нормально?" after a description of the service.
            state.add("complaint", 1.5, indignant[0])


def _spam_cues(state: _State) -> None:
    doc = state.doc
    words = _words(doc.tokens)
    lemmas = {t.lemma for t in words}
    norms = [t.norm for t in words]
    seen_medium: set[str] = set()
    for pos, tok in enumerate(words):
        lemma = tok.lemma
        parts = set(tok.norm.split("-")) if "-" in tok.norm else set()
        if (
            lemma in lexicon.SPAM_STRONG
            or tok.norm in lexicon.SPAM_STRONG
            or parts & lexicon.SPAM_STRONG
        ):
            state.add("spam", 2.5, tok)
        elif (
            lemma in lexicon.SPAM_MEDIUM or tok.norm in lexicon.SPAM_MEDIUM
        ) and lemma not in seen_medium:
            seen_medium.add(lemma)
            state.add("spam", 0.8, tok)
        if lemma in lexicon.SEEK_VERBS and lemmas & lexicon.JOB_WORDS:
            state.add("spam", 2.5, tok)
        if lemma in lexicon.WRONG_PLACE:
            before = {t.lemma for t in words[max(0, pos - 2) : pos]}
            if "это" in before or lemmas & {"заказать", "забирать", "забрать"}:
                state.add("spam", 2.5, tok)
        if lemma in lexicon.SCAM_WORDS and lemmas & {"карта", "номер", "счет"}:
            state.add("spam", 2.5, tok)
        if lemma in ("продать", "продавать") and tok.has("1per"):
            state.add("spam", 2.0, tok)
        if lemma == "предлагать" and not tok.has("plur"):
            nxt = words[pos + 1] if pos + 1 < len(words) else None
            if nxt is None or nxt.pos != "INFN":
                # A private pitch ("предлагаю фотосессию"), not "предлагаю
                # перенести".
                state.add("spam", 1.5, tok)
        if (
            tok.pos == "VERB"
            and tok.has("1per")
            and tok.has("plur")
            and not tok.has("past")
            and lemmas & B2B_OBJECTS
        ) or (lemma == "предлагать" and lemmas & B2B_OBJECTS):
            state.add("spam", 2.0, tok)
        elif (
            tok.pos == "VERB"
            and tok.has("1per")
            and not tok.has("past")
            and lemma in PITCH_VERBS
            and lemmas & B2B_OBJECTS
            and "ваш" in lemmas
        ):
            # "могу сделать ваш сайт первым в поиске": a one-person pitch.
            state.add("spam", 2.0, tok)
        if lemma in lexicon.JOB_TITLES and _offers_labour(words, pos):
            state.add("spam", 2.5, tok)
    if (
        words
        and words[0].lemma in lexicon.FAMILY_CALL
        and lemmas
        & {
            "номер",
            "телефон",
            "карта",
        }
    ):
        state.add("spam", 2.0, words[0])
    if "это ты" in " ".join(norms):
        this = norms.index("это") if "это" in norms else 0
        state.add("spam", 1.5, words[this : this + 2])
    informal = [t for t in words if t.norm in ("ты", "тебя", "тебе", "тобой")]
    we_wait = (
        any(t.pos == "VERB" and t.has("1per") and t.has("plur") for t in words)
        or "мы" in norms
    )
    on_topic = bool(lemmas & lexicon.DOMAIN_LEMMAS)
    if (
        informal
        and (lemmas | set(norms)) & WAITING_WORDS
        and not state.services
        and (we_wait or not on_topic)
    ):
        # "Маш, ты где? мы у входа" is a message for someone else.
        state.add("spam", 2.5, informal[0])
    ad_words = [t for t in words if t.norm in lexicon.ENGLISH_AD_WORDS]
    if doc.form is not None and doc.form.name:
        ad_words += [
            t
            for t in analyse_name_tokens(doc.form.name)
            if t.norm in lexicon.ENGLISH_AD_WORDS
        ]
    if len(ad_words) >= 2 or (ad_words and "\x00URL\x00" in doc.text):
        state.add("spam", 2.5, ad_words[0] if ad_words[0] in words else words[0])
    if lemmas & {"check", "перейти"} and lemmas & {"профиль", "мой"}:
        state.add("spam", 2.0, words[0])
    if "\x00URL\x00" in doc.text and lemmas & (
        {"выиграть", "подписаться", "канал", "перейти", "ссылка"}
    ):
        state.add("spam", 1.0, words[0] if words else doc.tokens[0])

    gibberish = [t for t in words if _gibberish(t)]
    if words and len(gibberish) / len(words) >= 0.6:
        state.add("spam", 2.5, gibberish[0])
    tests = [t for t in words if t.norm in TEST_WORDS]
    if doc.form is not None and words and len(tests) >= max(1, len(words) // 2):
        state.add("spam", 2.0, tests[0])
    if doc.form is not None and doc.form.name:
        name_tokens = analyse_name_tokens(doc.form.name)
        if name_tokens and all(_gibberish(t) for t in name_tokens):
            state.add("spam", 1.5, words[0] if words else doc.tokens[0])


def _offers_labour(words: list[Token], pos: int) -> bool:
    """ "вам требуется уборщица?", "вам не нужен администратор? опыт 3 года":
    a job title asked about with "вам" and a staffing verb nearby, or with
    words about shifts and experience."""
    window = words[max(0, pos - 4) : pos + 1]
    lemmas = {t.lemma for t in window}
    norms = {t.norm for t in window}
    if norms & {"вам", "вы"} and lemmas & lexicon.STAFFING_VERBS:
        return True
    # Without "вам": the writer speaks of themselves ("могу", "ищу") and of
    # shifts or experience.
    rest = {t.lemma for t in words}
    first_person = {t.norm for t in words} & {"могу", "готов", "готова", "ищу"}
    return bool(rest & lexicon.LABOUR_WORDS) and bool(first_person)


@lru_cache(maxsize=5_000)
def _name_tokens(value: str) -> tuple[Token, ...]:
    return tuple(_words(analyse(value).tokens))


def analyse_name_tokens(value: str) -> list[Token]:
    return list(_name_tokens(value))


def _gibberish(tok: Token) -> bool:
    word = tok.norm
    if len(word) < 4 or (tok.known and not tok.latin):
        return False
    if tok.latin and word in lexicon.ENGLISH_WORDS:
        return False
    if len(set(word)) <= 2 and len(word) >= 5:
        return True
    adjacent = 0
    for a, b in zip(word, word[1:], strict=False):
        if any(
            a in row and b in row and abs(row.index(a) - row.index(b)) == 1
            for row in KEYBOARD_ROWS
        ):
            adjacent += 1
    if adjacent / (len(word) - 1) >= 0.6:
        return True
    vowels = sum(1 for ch in word if ch in "аеёиоуыэюяaeiouy")
    return vowels == 0 and len(word) >= 5


def _question_cues(state: _State) -> None:
    doc = state.doc
    complaint = state.score("complaint")
    cue_spans = [
        (c.start, c.end)
        for c in state.cues
        if c.tag != "question" and c.weight >= THRESHOLD
    ]
    slot_spans = [
        (f.start, f.end) for f in state.fragments if f.role == "new" and f.day
    ]
    for tok in _words(doc.tokens):
        if tok.lemma == "вопрос" and not _negated(doc.tokens, tok):
            state.add("question", 1.5, tok)
            break
    for sentence in doc.sentences:
        if sentence[0].sent not in doc.question_sentences:
            continue
        for unit in _question_units(sentence):
            words = _words(unit)
            lemmas = {t.lemma for t in words}
            first, last = unit[0].index, unit[-1].index
            asks = bool(lemmas & lexicon.QUESTION_WORDS) or any(
                "?" in t.text for t in unit if t.kind == "punct"
            )
            if not asks:
                continue
            content = [
                t
                for t in words
                if t.lemma not in NEUTRAL_WORDS
                and t.lemma not in lexicon.ASK_VERBS
                and t.pos not in FUNCTION_POS
            ]
            if not content:
                continue
            content_lemmas = {t.lemma for t in content}
            if content_lemmas & lexicon.CALLBACK and content_lemmas <= (
                lexicon.CALLBACK | lexicon.CAN
            ):
                # "Можете перезвонить?" asks for a call, which
                # _callback_cues tags when nothing else is asked.
                continue
            if complaint >= THRESHOLD and (
                lemmas & lexicon.RHETORICAL
                or lemmas & lexicon.INDIGNANT_WORDS
                or not lemmas & (lexicon.QUESTION_WORDS - {"это"})
                or (len(content) <= 1 and lemmas <= RHETORICAL_SHORT)
                or lemmas & REMEDY_VERBS
            ):
                # "Это нормально?" after a complaint is indignation.
                continue
            has_cue = any(s <= last and first <= e for s, e in cue_spans)
            asks_slot = not lemmas & lexicon.HOURS_WORDS and any(
                s <= last and first <= e for s, e in slot_spans
            )
            if has_cue or asks_slot:
                # "до какого числа можно переносить": a policy question.
                policy = lemmas & {"какой", "когда", "как", "сколько", "что"}
                changes = lemmas & (lexicon.RESCHEDULE_VERBS | lexicon.CANCEL_VERBS)
                if policy and changes:
                    state.add("question", 1.2, words[0])
                    continue
                extra = _second_question(words, cue_spans)
                if extra is not None:
                    state.add("question", 1.2, extra)
                continue
            weight = 1.5 if any("?" in t.text for t in unit) else 1.2
            state.add("question", weight, _question_evidence(words, content))


def _second_question(
    words: list[Token], cue_spans: list[tuple[int, int]]
) -> Token | list[Token] | None:
    """A question of its own beside a price or booking cue: "сколько стоит и
    какие анализы нужны", "сколько по времени и по деньгам"."""
    for pos, tok in enumerate(words):
        if any(s <= tok.index <= e for s, e in cue_spans):
            continue
        if tok.lemma in ("какой", "где", "кто", "куда") and pos > 0:
            if words[pos - 1].norm in ("и", "а"):
                return tok
        if tok.lemma == "длиться":
            return tok
        if (
            tok.lemma == "сколько"
            and pos + 2 < len(words)
            and words[pos + 1].norm == "по"
            and words[pos + 2].lemma == "время"
        ):
            return words[pos : pos + 3]
    return None


def _question_evidence(words: list[Token], content: list[Token]) -> Token | list[Token]:
    """The words a manager would see as the question: a question word ("где",
    "можно ли"), else the predicate ("работаете"), else the first content
    word that is neither a name nor a date."""
    for pos, tok in enumerate(words):
        if tok.lemma == "ли":
            return words[max(0, pos - 1) : pos + 1]
        if tok.lemma in lexicon.QUESTION_WORDS and tok.lemma != "это":
            return tok
    plain = [
        t
        for t in content
        if not (t.has("Name") or t.has("Surn")) and t.lemma not in TIME_LEMMAS
    ]
    for tok in plain:
        if tok.pos in ("VERB", "INFN", "PRED", "ADJS", "PRTS"):
            return tok
    return plain[0] if plain else (content or words)[0]


def _question_units(sentence: list[Token]) -> list[list[Token]]:
    """Clauses of a question sentence that can carry a question of their own.

    A clause without a verb or a question word ("(ЭхоКГ)", "пожалуйста",
    "интересует консультация", "19 сентября?") is glued to its neighbour.
    """
    clauses: list[list[Token]] = []
    for tok in sentence:
        if clauses and clauses[-1][-1].clause == tok.clause:
            clauses[-1].append(tok)
        else:
            clauses.append([tok])
    units: list[list[Token]] = []
    pending: list[Token] = []
    for clause in clauses:
        words = _words(clause)
        # "..., если брать 10 штук?" only qualifies the question before it.
        condition = bool(words) and words[0].norm in ("если", "чтобы")
        stands_alone = not condition and any(
            t.lemma in lexicon.QUESTION_WORDS
            or (
                t.pos in ("VERB", "INFN", "PRED", "ADJS", "PRTS")
                and t.lemma not in lexicon.ASK_VERBS
            )
            or t.norm == "есть"
            for t in words
        )
        if stands_alone:
            units.append(pending + clause)
            pending = []
        elif units and not pending:
            units[-1].extend(clause)
        else:
            pending.extend(clause)
    if pending:
        if units:
            units[-1].extend(pending)
        else:
            units.append(pending)
    return units


def _form_cues(state: _State) -> None:
    form = state.doc.form
    if form is None:
        return
    others = max(
        state.score(tag) for tag in ("price", "reschedule", "cancel", "complaint")
    )
    if others >= 1.0 or state.score("booking") >= 1.0:
        return
    if state.score("question") >= 1.0 and form.has_free_text:
        return
    first = state.doc.tokens[0] if state.doc.tokens else Token(text="", kind="punct")
    state.cues.append(Cue("booking", 1.3, first.index, first.index, "заявка"))


def _callback_cues(state: _State) -> None:
    """Tag a call-back request that carries no other intent.

    A request that leaves a name or a phone ("Марина +7 ... перезвоните"),
    names a service or describes a symptom asks for a visit, so it counts as
    a booking. A bare "перезвоните" or a report of failing to get through is
    a question for the administrator, because nothing in it asks for a visit.
    """
    doc = state.doc
    if doc.form is not None:
        return
    if max(state.score(t) for t in INTENTS) >= 1.0:
        return
    words = _words(doc.tokens)
    request = _call_request(words)
    if request is None:
        return
    contacts = any(t.kind == "mask" for t in doc.tokens) or _name(doc) is not None
    visit = bool(state.services) or any(t.lemma in SYMPTOM_LEMMAS for t in words)
    if visit or (contacts and not _reach_failed(words)):
        state.add("booking", 1.2, request)
    else:
        state.add("question", 1.2, request)


def _call_request(words: list[Token]) -> Token | None:
    """Return the verb of "перезвоните", "свяжитесь со мной", "наберите
    меня", or None."""
    for pos, tok in enumerate(words):
        if tok.pos == "NOUN" or _negated(words, tok):
            continue
        if tok.lemma in lexicon.CALLBACK:
            return tok
        if tok.lemma in DIAL_VERBS and any(
            t.lemma == "я" for t in words[pos + 1 : pos + 3]
        ):
            return tok
    return None


def _reach_failed(words: list[Token]) -> bool:
    """Return True when the client reports failing to get through: "не могу
    дозвониться", "никто не берёт трубку"."""
    for tok in words:
        if tok.lemma in REACH_VERBS:
            return True
        if tok.lemma in ("брать", "взять") and _negated(words, tok):
            if any(t.lemma in UNANSWERED_OBJECTS for t in words):
                return True
    return False


def _off_topic(state: _State) -> None:
    """Mark spam by absence: content words but nothing about services or visits."""
    # NOTE: "on topic" is judged by DOMAIN_LEMMAS and the service catalogue. A
    # legitimate message using none of those words gets spam with low
    # confidence, so it is marked for review rather than hidden.
    doc = state.doc
    if state.services:
        return
    if max(state.score(t) for t in INTENTS if t != "question") >= THRESHOLD:
        return
    words = _words(doc.tokens)
    content = [
        t
        for t in words
        if t.lemma not in NEUTRAL_WORDS
        and t.pos not in FUNCTION_POS
        and len(t.norm) > 2
    ]
    if len(content) < 2:
        return
    lemmas = {t.lemma for t in words}
    if lemmas & (lexicon.DOMAIN_LEMMAS | VISIT_CHANGE_WORDS) or any(
        t.lemma in lexicon.STAFF for t in words
    ):
        return
    if _call_request(words) is not None:
        # A call-back request is on topic. The spam cues run before this
        # point and catch an advert that requests a call.
        return
    if any(f.role == "new" and f.day for f in state.fragments):
        return
    # Clients write to a business with "вы"; "ты" means a private chat.
    informal = any(t.norm in ("ты", "тебя", "тебе", "тобой") for t in words)
    plain = [t for t in content if not (t.has("Name") or t.has("Surn"))]
    evidence = next((t for t in plain if t.pos in ("NOUN", "VERB", "INFN")), None)
    state.add("spam", 2.0 if informal else 1.1, evidence or (plain or content)[0])


# --- urgency, name -----------------------------------------------------------


def _urgency(
    state: _State, tags: list[str], desired_day: date | None
) -> tuple[float, list[str]]:
    doc = state.doc
    if "spam" in tags:
        return 0.0, []
    score = 0.0
    reasons: list[str] = []
    today = state.today
    if desired_day == today and ("booking" in tags or "reschedule" in tags):
        score += 2.0
        reasons.append("сегодня")
    if ("cancel" in tags or "reschedule" in tags) and any(
        f.role == "old" and f.day == today for f in state.fragments
    ):
        score += 2.0
        reasons.append("визит сегодня")
    if (
        any(f.role == "new" and f.day == today and not f.skip for f in state.fragments)
        and not reasons
    ):
        score += 1.5
        reasons.append("сегодня")
    if any(f.asap and f.role == "new" for f in state.fragments):
        score += 2.0
        reasons.append("прямо сейчас")

    words = _words(doc.tokens)
    for pos, tok in enumerate(words):
        lemma = tok.lemma
        nxt = words[pos + 1] if pos + 1 < len(words) else None
        if lemma in lexicon.URGENT_WORDS:
            if nxt is not None and nxt.pos == "VERB" and nxt.has("1per"):
                continue
            score += 2.0
            reasons.append(tok.text.lower())
        elif lemma in LATE_VERBS and not _is_past(tok):
            # "опаздываю на 15 минут": the client is on the way now.
            score += 2.0
            reasons.append(tok.text.lower())
        elif lemma in ("течение", "близкий") and _within_hour(words, pos):
            # "перезвоните в течение часа", "в ближайшие полчаса".
            score += 2.0
            reasons.append(" ".join(t.text.lower() for t in words[pos : pos + 2]))
        elif lemma == "только" and nxt is not None and nxt.norm == "что":
            score += 1.5
            reasons.append("только что")
        elif lemma in lexicon.ACUTE_WORDS:
            score += 1.5
            reasons.append(tok.text.lower())
        elif lemma in lexicon.PAIN_WORDS:
            near = {t.lemma for t in words[max(0, pos - 3) : pos + 3]}
            if near & lexicon.INTENSITY:
                score += 1.5
                reasons.append("сильная боль")
        elif lemma == "температура":
            if {t.lemma for t in words} & CHILD_WORDS and not any(
                later.kind == "num"
                for later in doc.tokens[tok.index + 1 : tok.index + 4]
            ):
                score += 1.5
                reasons.append("температура у ребёнка")
            for later in doc.tokens[tok.index + 1 : tok.index + 4]:
                if later.kind == "num":
                    value = float(
                        re.sub(r"[^\d.]", "", later.norm.replace(",", ".")) or 0
                    )
                    if value >= 38:
                        score += 1.5
                        reasons.append("температура")
                    break
        elif lemma == "кровь" and any(
            t.lemma == "останавливаться" for t in words[pos : pos + 4]
        ):
            score += 1.5
            reasons.append("кровотечение")
        elif lemma == "уже" and nxt is not None:
            span = {t.lemma for t in words[max(0, pos - 2) : pos + 5]}
            if span & {"минута", "час"} and span & {"сидеть", "ждать", "стоять"}:
                score += 2.0
                reasons.append("ждёт сейчас")
    return score, reasons


def _within_hour(words: list[Token], pos: int) -> bool:
    """Return True for a deadline of an hour or less: "в течение часа", "в
    течение 30 минут", "в ближайший час"."""
    ahead = words[pos + 1 : pos + 3]
    if not ahead:
        return False
    if ahead[0].lemma in CALL_UNITS:
        return True
    return (
        (ahead[0].pos == "NUMR" or ahead[0].norm.isdigit())
        and len(ahead) > 1
        and ahead[1].lemma in ("минута", "мин")
    )


def _name(doc: Doc) -> str | None:
    if doc.form is not None and doc.form.name:
        tokens = analyse_name_tokens(doc.form.name)
        if len(tokens) > 1:
            # "ФИО: Кузнецова Мария Ивановна": the first name is not first.
            given = [t for t in tokens if _could_be_name(t) and not t.has("Surn")]
            if given:
                tokens = given
        if tokens:
            first = tokens[0]
            if _gibberish(first):
                return None
            if first.known and not first.latin and not _could_be_name(first):
                return None
            return _title(first.text)

    words = _words(doc.tokens)
    for pos, tok in enumerate(words):
        prev = words[pos - 1].norm if pos else ""
        prev2 = words[pos - 2].norm if pos > 1 else ""
        if prev == "зовут" and prev2 == "меня" and _could_be_name(tok, strict=False):
            return _title(tok.text)
        if prev in ("это", "я") and _could_be_name(tok, nominative=True):
            if pos + 1 < len(words) and words[pos + 1].norm == "ты":
                continue
            return _title(tok.text)
        if prev == "is" and prev2 == "name" and tok.latin:
            return _title(tok.text)

    first_name = _leading_name(doc)
    if first_name is not None:
        return first_name

    # Signature: the last words of the message, skipping surnames and
    # patronymics, contacts and punctuation.
    tail = [t for t in doc.tokens if t.kind not in ("punct", "mask", "other")]
    checked = 0
    for tok in reversed(tail):
        if not tok.is_word:
            if tok.kind == "num":
                continue
            break
        if tok.norm in ("тел", "телефон", "моб", "tel", "phone"):
            continue
        if tok.has("Surn") or tok.has("Patr"):
            checked += 1
            if checked > 3:
                break
            continue
        if _could_be_name(tok, nominative=True) and tok.cap:
            before = words[words.index(tok) - 1] if words.index(tok) else None
            if tok.index and doc.tokens[tok.index - 1].sent != tok.sent:
                # "... в четверг к 11. Ольга": a sentence break, not "к Ольге".
                before = None
            if before is not None and (
                before.norm in ("зовут", "к", "с", "у", "для", "от")
                or before.lemma in lexicon.STAFF
            ):
                return None
            if words and tok is words[0]:
                return None
            return _title(tok.text)
        checked += 1
        if checked >= 2:
            break
    return None


def _leading_name(doc: Doc) -> str | None:
    """A name as the first word, set apart: "Маша. хочу перенести ...",
    "Анна +7 999 ... перезвонить". A name followed by a comma is usually
    an address to someone, so it is not taken."""
    tokens = [t for t in doc.tokens if t.kind != "other"]
    if len(tokens) < 3 or not tokens[0].is_word:
        return None
    first, nxt = tokens[0], tokens[1]
    if not first.cap or not _could_be_name(first, nominative=True):
        return None
    if nxt.kind == "mask" or (nxt.kind == "punct" and nxt.text[0] in ".\n"):
        return _title(first.text)
    return None


def _could_be_name(tok: Token, nominative: bool = True, strict: bool = True) -> bool:
    if tok.latin:
        return not strict
    return _name_parse(tok.norm, nominative, strict)


@lru_cache(maxsize=20_000)
def _name_parse(norm: str, nominative: bool, strict: bool) -> bool:
    morph = resources().morph
    for parse in morph.parse(norm):
        tag = parse.tag
        if "Name" in tag and (not nominative or "nomn" in tag):
            return not (strict and not morph.word_is_known(norm))
    return False


def _title(word: str) -> str:
    return word[:1].upper() + word[1:].lower()


# --- engine ------------------------------------------------------------------


class OfflineEngine:
    """Rule-based classifier; thread-safe, shares its resources per process."""

    name = "offline"

    def classify(
        self, text: str, received_at: datetime, tz: str = "Europe/Moscow"
    ) -> Classification:
        zone = ZoneInfo(tz)
        if received_at.tzinfo is None:
            received_at = received_at.replace(tzinfo=zone)
        local = received_at.astimezone(zone)
        doc = analyse(text or "")

        if not any(t.kind in ("word", "num", "time", "date") for t in doc.tokens):
            form = doc.form
            if form is not None and (form.name or form.has_phone):
                if form.name and _name(doc) is None:
                    # "Имя: asdfgh": a test or a bot, not a callback request.
                    return _fallback("Заявка без осмысленного имени: нужна проверка.")
                return _callback_form(doc)
            return _fallback("Пустое сообщение: намерение не определить.")
        if doc.script == "other":
            return _fallback("Текст на незнакомом языке: нужна проверка человеком.")

        state = _State(doc=doc, today=local.date())
        state.services = match_services(doc.tokens)
        reschedule_words = any(
            t.lemma in lexicon.RESCHEDULE_VERBS for t in doc.tokens if t.kind == "word"
        )
        state.fragments = find_fragments(doc, state.today, reschedule_words)

        _spam_cues(state)
        _cancel_cues(state)
        _reschedule_cues(state)
        _booking_cues(state)
        _price_cues(state)
        _complaint_cues(state)
        _cancel_and_rebook(state)
        if state.score("reschedule") >= 1.5:
            state.drop("booking", soft_only=True)
            state.cues = [
                c for c in state.cues if not (c.tag == "cancel" and c.weight < 2.0)
            ]
        _question_cues(state)
        if state.pending_need is not None:
            others = max(state.score(t) for t in INTENTS if t != "question")
            if others < THRESHOLD or _needs_visit(state):
                # "вы сегодня работаете? нужен терапевт": the question is
                # about getting the visit, so the need is a booking.
                state.add("booking", 1.2, state.pending_need, soft=True)
        _form_cues(state)
        _callback_cues(state)
        _off_topic(state)

        scores = {tag: state.score(tag) for tag in INTENTS}
        confidence = {tag: confidence_from_score(s) for tag, s in scores.items()}
        tags = self._choose(scores)

        desired = None
        precision = None
        desired_day = None
        if "spam" not in tags and ("booking" in tags or "reschedule" in tags):
            wanted = choose_desired(state.fragments)
            if wanted is not None:
                desired_day = wanted.day
                desired = _at(wanted, zone)
                precision = "hour" if wanted.hour is not None else "day"

        appointment = None
        appointment_precision = None
        if "spam" not in tags and ("cancel" in tags or "reschedule" in tags):
            # A plain cancellation asks for no new time, so a day it names
            # that the role rules left as "new" is still the booked visit.
            only_cancel = "booking" not in tags and "reschedule" not in tags
            booked = choose_appointment(state.fragments, include_new=only_cancel)
            if booked is not None:
                appointment = _at(booked, zone)
                appointment_precision = "hour" if booked.hour is not None else "day"

        urgent_score, urgent_reasons = _urgency(state, tags, desired_day)
        confidence["urgent"] = (
            0.02 if "spam" in tags else confidence_from_score(urgent_score)
        )
        urgent = confidence["urgent"] >= 0.5

        spam = "spam" in tags
        service = (
            None
            if spam
            else pick_service(doc.tokens, _form_service(doc), _focus(state, tags))
        )
        name = None if spam else _name(doc)

        fallback = not any(scores[t] >= THRESHOLD for t in INTENTS)
        if fallback:
            confidence["question"] = min(confidence["question"], 0.4)
        if doc.english or doc.script == "latin":
            confidence = {k: min(v, 0.9) for k, v in confidence.items()}

        result = Classification(
            tags=tags,
            urgent=urgent,
            name=name,
            service=service,
            desired_time=desired,
            desired_time_precision=precision,
            appointment_time=appointment,
            appointment_time_precision=appointment_precision,
            confidence={k: round(v, 3) for k, v in confidence.items()},
            engine="offline",
            explanation=_explain(state, tags, urgent, urgent_reasons, fallback),
        )
        result.needs_review = (
            result.decision_confidence() < LOW_CONFIDENCE or _ambiguous(scores, tags)
        )
        return result

    @staticmethod
    def _choose(scores: dict[str, float]) -> list[str]:
        spam = scores["spam"]
        others = max(scores[t] for t in INTENTS if t != "spam")
        if (spam >= 2.0 and spam >= others - 0.5) or (
            spam >= THRESHOLD and others < THRESHOLD
        ):
            return ["spam"]
        tags = [t for t in INTENTS if t != "spam" and scores[t] >= THRESHOLD]
        return tags or ["question"]


def _at(moment: DesiredTime, zone: ZoneInfo) -> datetime:
    """Combine a parsed day and hour in ``zone``. A day alone starts at
    midnight."""
    hour = moment.hour
    minute = moment.minute if hour is not None else 0
    return datetime.combine(moment.day, time(hour or 0, minute), tzinfo=zone)


REVIEW_NEAR_MISS = 0.6
CONFLICTING = (
    ("cancel", "booking"),
    ("cancel", "reschedule"),
    ("complaint", "booking"),
)


def _ambiguous(scores: dict[str, float], tags: list[str]) -> bool:
    """Cases where the rules often err although each chosen tag looks sure.

    Spam that competes with a real intent (an ad quoting prices, a job
    seeker asking a question), tags that rarely go together, and an intent
    that fell just short of the threshold are shown to a person.
    """
    chosen = set(tags)
    if "spam" in chosen:
        return max(scores[t] for t in INTENTS if t != "spam") >= THRESHOLD
    if scores["spam"] >= REVIEW_NEAR_MISS:
        return True
    if any(a in chosen and b in chosen for a, b in CONFLICTING):
        return True
    return any(
        REVIEW_NEAR_MISS <= scores[t] < THRESHOLD
        for t in INTENTS
        if t not in chosen and t != "spam"
    )


def _focus(state: _State, tags: list[str]) -> tuple[int, int] | None:
    """For a move or a cancellation, the sentence that names the visit."""
    for tag in ("reschedule", "cancel"):
        if tag not in tags:
            continue
        cues = [c for c in state.cues if c.tag == tag]
        if not cues:
            continue
        best = max(cues, key=lambda c: c.weight)
        sent = state.doc.tokens[best.start].sent
        sentence = state.doc.sentences[sent]
        return sentence[0].index, sentence[-1].index
    return None


def _form_service(doc: Doc) -> str | None:
    return doc.form.service if doc.form is not None else None


def _explain(
    state: _State,
    tags: list[str],
    urgent: bool,
    urgent_reasons: list[str],
    fallback: bool,
) -> str:
    if fallback:
        return "Явных признаков намерения нет, поставлен «Вопрос» для проверки."
    parts = []
    for tag in tags:
        cues = sorted((c for c in state.cues if c.tag == tag), key=lambda c: -c.weight)
        if cues:
            parts.append(f"{RU_LABELS[tag]} — «{cues[0].label.lower()}»")
    sentence = "Признаки: " + ", ".join(parts) + "." if parts else ""
    if urgent and urgent_reasons:
        sentence += f" Срочно: «{urgent_reasons[0]}»."
    return sentence.strip()


def _callback_form(doc: Doc) -> Classification:
    """A form with a name or a phone and nothing else asks for a call back,
    which the dataset treats as a booking request."""
    name = _name(doc)
    confidence = {tag: 0.05 for tag in INTENTS}
    confidence["booking"] = round(confidence_from_score(1.3), 3)
    confidence["urgent"] = 0.05
    result = Classification(
        tags=["booking"],
        urgent=False,
        name=name,
        service=_form_service(doc),
        confidence=confidence,
        engine="offline",
        explanation="Заявка без комментария: просьба перезвонить.",
    )
    result.needs_review = result.decision_confidence() < LOW_CONFIDENCE
    return result


def _fallback(reason: str) -> Classification:
    confidence = {tag: 0.0 for tag in INTENTS}
    confidence["question"] = 0.3
    confidence["urgent"] = 0.1
    return Classification(
        tags=["question"],
        urgent=False,
        confidence=confidence,
        engine="offline",
        explanation=reason,
        needs_review=True,
    )
