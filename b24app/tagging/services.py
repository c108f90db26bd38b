"""Normalised service names ("маникюр", "приём терапевта") found in a message.

Procedures come from ``services.json``. Visits to a doctor are built from
the specialist's title, inflected by pymorphy3. So any specialist
("к неврологу", "у эндокринолога") becomes "приём невролога" without a
table of phrases.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .text import Token, analyse, resources

CATALOG_PATH = Path(__file__).with_name("services.json")
MAX_GAP = 2
BEAUTY_LOOKS = frozenset({"вечерняя причёска", "макияж"})

SPECIALISTS = frozenset(
    {
        "терапевт",
        "педиатр",
        "хирург",
        "окулист",
        "ортопед",
        "ортодонт",
        "психиатр",
        "остеопат",
        "гигиенист",
        "физиотерапевт",
        "психотерапевт",
        "логопед",
        "акушер",
        "мануальщик",
    }
)
# Beauty and dental advice is sold as a consultation, medical care as a visit.
CONSULT_SPECIALISTS = frozenset(
    {
        "косметолог",
        "ортодонт",
        "трихолог",
        "диетолог",
        "нутрициолог",
        "психолог",
        "имплантолог",
        "стилист",
        "колорист",
    }
)
PURPOSE_NOUNS = frozenset(
    {"справка", "документ", "форма", "одежда", "обувь", "шапочка", "купальник"}
)
_CASE_ENDINGS = ("ами", "ах", "ам", "ов", "ом", "а", "у", "е", "ы")
NOT_SPECIALISTS = frozenset(
    {"биолог", "геолог", "технолог", "эколог", "филолог", "астролог"}
)


@dataclass(frozen=True)
class ServiceMatch:
    name: str
    tier: int
    start: int
    end: int
    elements: int


class _Catalog:
    def __init__(self) -> None:
        data = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
        # first-element key -> list of (name, tier, compiled pattern)
        self.by_key: dict[str, list[tuple[str, int, list[list[tuple[bool, str]]]]]] = {}
        for entry in data["services"]:
            for pattern in entry["patterns"]:
                elements = []
                for element in pattern.split():
                    alts = []
                    for alt in element.split("|"):
                        exact = alt.startswith("=")
                        alts.append((exact, alt.lstrip("=")))
                    elements.append(alts)
                for _, prefix in elements[0]:
                    self.by_key.setdefault(prefix[:2], []).append(
                        (entry["name"], entry["tier"], elements)
                    )


_catalog: _Catalog | None = None
_catalog_lock = threading.Lock()


def catalog() -> _Catalog:
    global _catalog
    if _catalog is None:
        with _catalog_lock:
            if _catalog is None:
                _catalog = _Catalog()
    return _catalog


def _element_matches(alts: list[tuple[bool, str]], norm: str) -> bool:
    for exact, prefix in alts:
        if (norm == prefix) if exact else norm.startswith(prefix):
            return True
    return False


@lru_cache(maxsize=2_000)
def _genitive(lemma: str) -> str:
    parse = resources().morph.parse(lemma)[0]
    form = parse.inflect({"gent"})
    return form.word if form else lemma


def _specialist(tok: Token) -> str | None:
    if tok.latin or tok.kind != "word":
        return None
    return _specialist_of(tok.norm, tok.lemma)


@lru_cache(maxsize=20_000)
def _specialist_of(norm: str, lemma_guess: str) -> str | None:
    if re.fullmatch(r"лор(а|у|ом|е|ы|ов|ам|ами|ах)?", norm):
        return "лор"
    # pymorphy3 guesses lemmas of rare titles ("ортодонта"), so case endings
    # are also stripped by hand.
    head = norm.split("-")[0]
    candidates = [lemma_guess.split("-")[0], head]
    for ending in _CASE_ENDINGS:
        if head.endswith(ending):
            candidates.append(head[: -len(ending)])
    for lemma in candidates:
        if lemma in NOT_SPECIALISTS:
            return None
        if lemma in SPECIALISTS or lemma in CONSULT_SPECIALISTS:
            return lemma
        if lemma.endswith("олог") and len(lemma) >= 6:
            return lemma
    return None


def _visit_name(lemma: str, child: bool) -> str:
    title = "ЛОРа" if lemma == "лор" else _genitive(lemma)
    kind = "консультация" if lemma in CONSULT_SPECIALISTS else "приём"
    if child:
        return f"{kind} детского {title}"
    return f"{kind} {title}"


def match_services(tokens: list[Token]) -> list[ServiceMatch]:
    """Find every catalogue service and specialist visit named in the tokens."""
    words = [t for t in tokens if t.kind in ("word", "num", "alnum")]
    found: list[ServiceMatch] = []
    by_key = catalog().by_key
    for pos, tok in enumerate(words):
        norm = tok.norm
        for name, tier, elements in _starting_at(norm, by_key):
            end = _match_rest(words, pos, elements)
            if end is None:
                continue
            if (
                len(elements) == 1
                and pos > 1
                and words[pos - 1].norm == "для"
                and words[pos - 2].lemma in PURPOSE_NOUNS
            ):
                # "справка для бассейна" names a document, not the pool.
                continue
            found.append(
                ServiceMatch(name, tier, tok.index, words[end].index, len(elements))
            )
        spec = _specialist(tok)
        if spec:
            child = pos > 0 and words[pos - 1].lemma == "детский"
            start = words[pos - 1].index if child else tok.index
            found.append(ServiceMatch(_visit_name(spec, child), 1, start, tok.index, 1))
    return found


_first_cache: dict[str, list] = {}


def _starting_at(norm: str, by_key: dict) -> list:
    """Catalogue patterns whose first word matches ``norm`` (memoised)."""
    hit = _first_cache.get(norm)
    if hit is None:
        hit = [
            entry
            for entry in by_key.get(norm[:2], ())
            if _element_matches(entry[2][0], norm)
        ]
        if len(_first_cache) < 50_000:
            _first_cache[norm] = hit
    return hit


def _match_rest(
    words: list[Token], pos: int, elements: list[list[tuple[bool, str]]]
) -> int | None:
    current = pos
    for alts in elements[1:]:
        for step in range(1, MAX_GAP + 2):
            nxt = current + step
            if nxt >= len(words):
                return None
            if _element_matches(alts, words[nxt].norm):
                current = nxt
                break
        else:
            return None
    return current


def _topic_of_consultation(
    tokens: list[Token], matches: list[ServiceMatch]
) -> list[ServiceMatch]:
    """ "консультация косметолога по поводу ботокса": the consultation is what
    is booked, the procedure is only its topic."""
    consults = [m for m in matches if m.name.startswith("консультация")]
    if not consults:
        return matches
    by_index = {t.index: t for t in tokens}
    dropped = set()
    for consult in consults:
        for m in matches:
            if m is consult or not 0 < m.start - consult.end <= 4:
                continue
            between = [
                by_index[i].norm
                for i in range(consult.end + 1, m.start)
                if i in by_index
            ]
            if {"поводу", "насчет", "про"} & set(between):
                dropped.add(id(m))
    return [m for m in matches if id(m) not in dropped]


def _resolve_overlaps(matches: list[ServiceMatch]) -> list[ServiceMatch]:
    """Keep the most specific of overlapping matches ("мужская стрижка" over
    "стрижка"); ties go to the earlier, then the tighter match."""
    ordered = sorted(
        matches, key=lambda m: (-m.elements, -m.tier, m.start, m.end - m.start)
    )
    kept: list[ServiceMatch] = []
    for match in ordered:
        if any(match.start <= k.end and k.start <= match.end for k in kept):
            continue
        kept.append(match)
    return sorted(kept, key=lambda m: m.start)


def _prefer_specific(matches: list[ServiceMatch]) -> list[ServiceMatch]:
    """Drop a service that a more specific one named elsewhere in the text
    contains: "на стрижку ... детская стрижка" is "детская стрижка"."""
    names = {m.name for m in matches}
    return [
        m
        for m in matches
        if not any(m.name != other and m.name in other.split() for other in names)
        or m.tier == 3
    ]


def _names_manicure(tokens: list[Token]) -> bool:
    return any(t.norm.startswith(("маникюр", "manicure")) for t in tokens if t.is_word)


def _joined_pair(tokens: list[Token], matches: list[ServiceMatch]) -> str | None:
    """Two procedures joined by "и" ("стрижку и окрашивание") are both kept,
    as the dataset writes "маникюр и педикюр"."""
    by_index = {t.index: t for t in tokens}
    procedures = [m for m in matches if m.tier >= 2]
    for first, second in zip(procedures, procedures[1:], strict=False):
        if first.name == second.name:
            continue
        between = [
            by_index[i]
            for i in range(first.end + 1, second.start)
            if i in by_index and by_index[i].kind != "space"
        ]
        # "стрижку кончиков и ботокс": one qualifying word may come first.
        # A "+" lists parts of one visit and keeps the first, as the
        # dataset does ("стрижка + укладка" -> "стрижка").
        if between and between[-1].norm == "и" and len(between) <= 2:
            if len(between) == 1 or between[0].is_word:
                return f"{first.name} и {second.name}"
    return None


@lru_cache(maxsize=2_000)
def _service_of_field(value: str) -> str | None:
    return pick_service(analyse(value).tokens)


def pick_service(
    tokens: list[Token],
    form_service: str | None = None,
    focus: tuple[int, int] | None = None,
) -> str | None:
    """The one service a manager should see for the lead.

    ``focus`` is the token span of the sentence that carries the main
    request; a service named there wins over one named elsewhere.
    """
    matches = _resolve_overlaps(match_services(tokens))
    matches = _topic_of_consultation(tokens, matches)
    matches = _prefer_specific(matches)
    names = {m.name for m in matches}

    if "маникюр" in names and "педикюр" in names and _names_manicure(tokens):
        return "маникюр и педикюр"
    if "педикюр" in names:
        # "педикюр с покрытием": the coating is part of the pedicure.
        matches = [m for m in matches if m.name != "маникюр"]
    if names & BEAUTY_LOOKS:
        # "причёска + макияж, и пробный": a trial of the look, not a class.
        matches = [m for m in matches if m.name != "пробное занятие"]
    pair = _joined_pair(tokens, matches)
    if pair is not None:
        return pair
    top = [m for m in matches if m.tier == 3]
    if top:
        return top[0].name
    if form_service:
        from_form = _service_of_field(form_service)
        if from_form:
            return from_form
    if focus is not None:
        inside = [m for m in matches if focus[0] <= m.start <= focus[1]]
        if inside:
            matches = inside
    for tier in (2, 1, 0):
        same = [m for m in matches if m.tier == tier]
        if same:
            return same[0].name
    return None
