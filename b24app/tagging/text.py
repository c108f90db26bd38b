"""Text preparation for the offline engine.

Turns a raw lead message into analysed tokens: contacts masked, web-form
fields split out, Latin transliteration and common misspellings mapped to
Russian words, and each word lemmatised by pymorphy3. The morphology analyser
and the caches are process-wide and built once, under a lock.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

import phonenumbers
import pymorphy3
import snowballstemmer

from . import lexicon

logger = logging.getLogger(__name__)

# Work is capped so that a pasted document cannot stall the request path. The
# tail is kept because e-mails put the sender's name at the end.
MAX_TEXT_CHARS = 2000
TAIL_CHARS = 300

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
URL_RE = re.compile(
    r"(?:https?://|www\.)\S+"
    r"|\b[\w-]+(?:\.[\w-]+)*\.(?:ru|com|me|net|org|io|su|info|biz|рф|example)"
    r"(?:/\S*)?",
    re.IGNORECASE,
)
# Russian mobile and landline shapes, plus long digit runs from web forms.
PHONE_RE = re.compile(
    r"(?<![\w.:])(?:\+\s?7|8|7)?[\s(-]{0,2}\d{3}[\s)-]{0,2}\d{3}[\s-]?\d{2}[\s-]?\d{2}"
    r"(?![\w.:])"
    r"|(?<!\w)\+?\d{10,15}(?!\w)"
)
_TLD_RE = re.compile(
    r"\.(?:ru|com|me|net|org|io|su|info|biz|рф|example)\b", re.IGNORECASE
)
_DIGIT_RE = re.compile(r"\d")
MASK_PHONE = "\x00PHONE\x00"
MASK_EMAIL = "\x00EMAIL\x00"
MASK_URL = "\x00URL\x00"

FORM_LINE_RE = re.compile(r"^\s*([^\W\d_][\w\- .]{0,30}?)\s*:\s*(.*)$")
FORM_NAME_KEYS = frozenset({"имя", "name", "фио", "ваше имя", "клиент"})
FORM_CONTACT_KEYS = frozenset(
    {"телефон", "тел", "phone", "e-mail", "email", "почта", "эл. почта", "whatsapp"}
)
FORM_SERVICE_KEYS = frozenset(
    {"услуга", "врач", "специалист", "направление", "страница", "процедура"}
)
FORM_OTHER_KEYS = frozenset(
    {
        "комментарий",
        "сообщение",
        "желаемая дата",
        "желаемое время",
        "дата",
        "время",
        "тема",
        "subject",
    }
)

TOKEN_RE = re.compile(
    r"(?P<nl>\n)"
    r"|(?P<mask>\x00[A-Z]+\x00)"
    r"|(?P<time>\d{1,2}:\d{2})"
    r"|(?P<date>\d{1,2}\.\d{1,2}(?:\.\d{2,4})?)(?![\d:])"
    r"|(?P<num>\d+(?:[.,]\d+)?"
    r"(?:-?(?:ого|го|ое|е|ой|й|ый|ий|ая|я|ья|ье|ти|ми|х|ых))?)(?![^\W\d_])"
    r"|(?P<alnum>\d+[^\W\d_]+)"
    r"|(?P<word>[^\W\d_]+(?:[-'’][^\W\d_]+)*)"
    r"|(?P<punct>[.!?…]+|[,;:()«»\"“”+/\-–—])"
    r"|(?P<other>\S)"
)
SENTENCE_END = frozenset({".", "!", "?", "…", "\n"})
CLAUSE_END = SENTENCE_END | frozenset({",", ";", ":", "(", ")", "—", "–"})
CLAUSE_START_AFTER_AND = frozenset(
    {
        "можно",
        "есть",
        "какой",
        "как",
        "где",
        "когда",
        "сколько",
        "нужно",
        "нужный",
        "надо",
        "до",
        "что",
        "запишите",
        "записать",
    }
)

_CYR = re.compile(r"[а-яё]", re.IGNORECASE)
_LAT = re.compile(r"[a-z]", re.IGNORECASE)

# Latin to Cyrillic, longest letter groups first.
_TRANSLIT_GROUPS = (
    ("shch", "щ"),
    ("sch", "щ"),
    ("zh", "ж"),
    ("kh", "х"),
    ("ch", "ч"),
    ("sh", "ш"),
    ("yo", "ё"),
    ("jo", "ё"),
    ("yu", "ю"),
    ("ju", "ю"),
    ("ya", "я"),
    ("ja", "я"),
    ("ye", "е"),
    ("je", "е"),
    ("ts", "ц"),
    ("tz", "ц"),
    ("ck", "к"),
)
_TRANSLIT_SINGLE = {
    "a": "а",
    "b": "б",
    "v": "в",
    "g": "г",
    "d": "д",
    "e": "е",
    "z": "з",
    "i": "и",
    "y": "ы",
    "k": "к",
    "l": "л",
    "m": "м",
    "n": "н",
    "o": "о",
    "p": "п",
    "r": "р",
    "s": "с",
    "t": "т",
    "u": "у",
    "f": "ф",
    "h": "х",
    "c": "к",
    "w": "в",
    "x": "кс",
    "q": "к",
    "j": "й",
    "'": "ь",
}
_VOWELS = set("аеёиоуыэюя")
_ONE_LETTER_WORDS = frozenset("вксуоия")


@dataclass(slots=True)
class Token:
    """One token of the analysed message."""

    text: str
    kind: str
    norm: str = ""
    lemma: str = ""
    pos: str = ""
    gram: frozenset[str] = frozenset()
    known: bool = True
    latin: bool = False
    cap: bool = False
    sent: int = 0
    clause: int = 0
    index: int = 0

    @property
    def is_word(self) -> bool:
        return self.kind == "word"

    def has(self, grammeme: str) -> bool:
        return grammeme in self.gram


@dataclass
class FormFields:
    """Fields of a web-form or callback lead ("Имя: ...", "Телефон: ...")."""

    name: str | None = None
    service: str | None = None
    has_phone: bool = False
    has_free_text: bool = False


@dataclass
class Doc:
    """An analysed message."""

    raw: str
    text: str
    tokens: list[Token]
    form: FormFields | None = None
    truncated: bool = False
    script: str = "cyrillic"
    english: bool = False
    words: int = 0
    sentences: list[list[Token]] = field(default_factory=list)
    clauses: list[list[Token]] = field(default_factory=list)
    question_sentences: set[int] = field(default_factory=set)


class _Resources:
    """Heavy objects shared by all engine instances and threads."""

    def __init__(self) -> None:
        self.morph = pymorphy3.MorphAnalyzer()
        self.en_stemmer = snowballstemmer.stemmer("english")
        self.fuzzy_index = _build_fuzzy_index(self.morph)


_resources: _Resources | None = None
_resources_lock = threading.Lock()


def resources() -> _Resources:
    """Return the process-wide analyser, building it on first use."""
    global _resources
    if _resources is None:
        with _resources_lock:
            if _resources is None:
                logger.info("loading morphology resources")
                _resources = _Resources()
    return _resources


def _fuzzy_vocabulary() -> set[str]:
    words: set[str] = set()
    for name in dir(lexicon):
        value = getattr(lexicon, name)
        if isinstance(value, frozenset):
            words.update(w for w in value if isinstance(w, str) and _CYR.search(w))
    words.update(lexicon.SLANG.values())
    words.update(
        {
            "здравствуйте",
            "пожалуйста",
            "сегодня",
            "завтра",
            "послезавтра",
            "понедельник",
            "вторник",
            "среда",
            "четверг",
            "пятница",
            "суббота",
            "воскресенье",
            "маникюр",
            "педикюр",
            "стрижка",
            "окрашивание",
            "массаж",
            "тренировка",
            "сколько",
            "можно",
            "когда",
            "вечером",
            "утром",
        }
    )
    return words


def _build_fuzzy_index(morph: pymorphy3.MorphAnalyzer) -> dict[str, str]:
    """Map every form of the cue words, and each one-letter deletion of it, to
    the form, so a word one edit away from a cue word can be found quickly."""
    forms: set[str] = set()
    for word in _fuzzy_vocabulary():
        forms.add(word)
        parses = morph.parse(word)
        if parses:
            forms.update(f.word.replace("ё", "е") for f in parses[0].lexeme)
    index: dict[str, str] = {}
    for form in sorted(forms):
        if len(form) < 4:
            continue
        index.setdefault(form, form)
        for i in range(len(form)):
            index.setdefault(form[:i] + form[i + 1 :], form)
    return index


@lru_cache(maxsize=100_000)
def analyse_word(norm: str) -> tuple[str, str, frozenset[str], bool]:
    """Return lemma, part of speech, grammemes and dictionary membership."""
    morph = resources().morph
    parses = morph.parse(norm)
    parse = parses[0]
    tag = parse.tag
    gram = set(str(tag).replace(" ", ",").split(","))
    # "облезло" reads first as a short adjective; remember that it can be a
    # past-tense verb too, for telling past events from wishes.
    if any(p.tag.POS == "VERB" and "past" in p.tag for p in parses[1:3]):
        gram.add("PastAlt")
    gram = frozenset(gram)
    lemma = parse.normal_form.replace("ё", "е")
    return lemma, str(tag.POS or ""), gram, morph.word_is_known(norm)


@lru_cache(maxsize=20_000)
def _english_stem(word: str) -> str:
    return resources().en_stemmer.stemWord(word)


@lru_cache(maxsize=50_000)
def spell_fix(norm: str) -> str | None:
    """Return the cue word one edit away from an unknown word, if any."""
    if len(norm) < 5:
        return None
    index = resources().fuzzy_index
    if norm in index:
        return index[norm]
    for i in range(len(norm)):
        hit = index.get(norm[:i] + norm[i + 1 :])
        if hit and hit[0] == norm[0]:
            return hit
    return None


def _translit_base(word: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(word):
        for latin, cyr in _TRANSLIT_GROUPS:
            if word.startswith(latin, i):
                out.append(cyr)
                i += len(latin)
                break
        else:
            out.append(_TRANSLIT_SINGLE.get(word[i], word[i]))
            i += 1
    return "".join(out)


def _translit_candidates(word: str) -> list[str]:
    candidates: list[str] = []
    # "c" is "к" in "crossfit" but "ц" in "epilyaciya".
    for spelling in dict.fromkeys((word, word.replace("c", "ts"))):
        candidates.extend(_translit_variants(_translit_base(spelling)))
    return candidates


def _translit_variants(base: str) -> list[str]:
    candidates = [base]
    # Reflexive verbs: "-tsa", "-tsya" stand for "-ться".
    for end in ("тсыа", "тсиа", "тся", "тса", "цыа", "ця", "ца"):
        if base.endswith(end):
            candidates.append(base[: -len(end)] + "ться")
            candidates.append(base[: -len(end)] + "тся")
    # "y" after a vowel, and "i" closing a diphthong, are usually "й".
    candidates.append(re.sub(r"(?<=[аеоуыэюяи])ы", "й", base))
    candidates.append(re.sub(r"(?<=[аоуыэ])и(?=[^аеёиоуыэюя]|$)", "й", base))
    candidates.append(re.sub(r"ии$|ыи$", "ий", base))
    # A soft sign is often dropped after "л" and at the end of a word.
    candidates.append(re.sub(r"л(?=[бвгдзклмнпрстфхцчшщ])", "ль", base))
    if base and base[-1] not in _VOWELS:
        candidates.append(base + "ь")
    candidates.append(base.replace("ц", "тс"))
    if base.startswith("е"):
        candidates.extend(["э" + c[1:] for c in candidates if c.startswith("е")])
    return candidates


@lru_cache(maxsize=20_000)
def translit_to_russian(word: str) -> str | None:
    """Cyrillic spelling of a transliterated Russian word, if one is known."""
    morph = resources().morph
    candidates = _translit_candidates(word.lower())
    for candidate in candidates:
        if len(candidate) == 1 and candidate in _ONE_LETTER_WORDS:
            return candidate
        if len(candidate) > 1 and morph.word_is_known(candidate):
            return candidate.replace("ё", "е")
    for candidate in candidates:
        fixed = lexicon.SLANG.get(candidate) or spell_fix(candidate)
        if fixed:
            return fixed
    return None


def mask_contacts(text: str, mask: bool = True) -> str:
    """Replace e-mails, links and phone numbers with placeholders."""
    # Cheap checks first: most messages have none of these.
    if "@" in text:
        text = EMAIL_RE.sub(MASK_EMAIL if mask else " ", text)
    if "://" in text or "www." in text or _TLD_RE.search(text):
        text = URL_RE.sub(MASK_URL if mask else " ", text)
    if len(_DIGIT_RE.findall(text)) >= 10:
        text = PHONE_RE.sub(MASK_PHONE if mask else " ", text)
    return text


def mask_for_prompt(text: str) -> str:
    """Hide phone numbers and e-mails before the text leaves the app."""
    text = EMAIL_RE.sub("[e-mail]", text)
    spans = [
        (m.start, m.end)
        for m in phonenumbers.PhoneNumberMatcher(
            text, "RU", leniency=phonenumbers.Leniency.POSSIBLE
        )
    ]
    for start, end in reversed(spans):
        text = text[:start] + "[телефон]" + text[end:]
    return PHONE_RE.sub("[телефон]", text)


def cap_text(text: str) -> tuple[str, bool]:
    """Head and tail of an over-long message."""
    if len(text) <= MAX_TEXT_CHARS + TAIL_CHARS:
        return text, False
    return text[:MAX_TEXT_CHARS] + "\n" + text[-TAIL_CHARS:], True


_INLINE_KEYS = sorted(
    FORM_NAME_KEYS | FORM_CONTACT_KEYS | FORM_SERVICE_KEYS | FORM_OTHER_KEYS,
    key=len,
    reverse=True,
)
_INLINE_FIELD_RE = re.compile(
    r"\s*(?:\|\s*)?(?<![\w.-])(?=(?:"
    + "|".join(re.escape(k) for k in _INLINE_KEYS)
    + r")\s*:)",
    re.IGNORECASE,
)
_FORM_START_RE = re.compile(
    r"^\s*(?:" + "|".join(re.escape(k) for k in _INLINE_KEYS) + r")\s*:",
    re.IGNORECASE,
)


def _split_inline_fields(text: str) -> str:
    """Put each field of a one-line form ("Имя: Сергей Комментарий: ...") on
    its own line, so one-line and multi-line forms parse alike."""
    if not _FORM_START_RE.match(text):
        return text
    lines = []
    for line in text.split("\n"):
        parts = [part for part in _INLINE_FIELD_RE.split(line) if part.strip(" |")]
        if parts:
            lines.extend(part.strip() for part in parts)
        else:
            lines.append(line)
    return "\n".join(lines)


def parse_form(text: str) -> tuple[str, FormFields | None]:
    """Split "Key: value" web-form lines; return the text to classify."""
    lines = _split_inline_fields(text).split("\n")
    matches = [FORM_LINE_RE.match(line) for line in lines]
    known = 0
    for m in matches:
        if m and m.group(1).strip().lower() in (
            FORM_NAME_KEYS | FORM_CONTACT_KEYS | FORM_SERVICE_KEYS | FORM_OTHER_KEYS
        ):
            known += 1
    keys = {m.group(1).strip().lower() for m in matches if m}
    if known < 2 or not keys & (FORM_NAME_KEYS | FORM_CONTACT_KEYS):
        return text, None

    form = FormFields()
    kept: list[str] = []
    for line, m in zip(lines, matches, strict=True):
        key = m.group(1).strip().lower() if m else ""
        value = m.group(2).strip() if m else line.strip()
        if key in FORM_NAME_KEYS:
            form.name = value or None
            kept.append("")
        elif key in FORM_CONTACT_KEYS:
            form.has_phone = form.has_phone or bool(
                MASK_PHONE in value or len(_DIGIT_RE.findall(value)) >= 7
            )
            kept.append("")
        elif key in FORM_SERVICE_KEYS:
            cleaned = value.strip(" —-–")
            if cleaned and form.service is None:
                form.service = cleaned
            kept.append(f"{m.group(1)}: {value}" if key == "страница" else "")
        else:
            if key in ("комментарий", "сообщение") and value.strip(" —-–"):
                form.has_free_text = True
            kept.append(line)
    return "\n".join(kept), form


_CYR_ALL = re.compile(r"[а-яё]", re.IGNORECASE)
_LAT_ALL = re.compile(r"[a-z]", re.IGNORECASE)
_LETTER_ALL = re.compile(r"[^\W\d_]")


def detect_script(text: str) -> tuple[str, int, int]:
    """Main script of the letters: cyrillic, latin, other or none."""
    cyr = len(_CYR_ALL.findall(text))
    lat = len(_LAT_ALL.findall(text))
    total = len(_LETTER_ALL.findall(text))
    other = total - cyr - lat
    if total == 0:
        return "none", cyr, lat
    if other > total / 2:
        return "other", cyr, lat
    return ("cyrillic" if cyr >= lat else "latin"), cyr, lat


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    for m in TOKEN_RE.finditer(text):
        kind = m.lastgroup or "other"
        value = m.group(0)
        if kind == "other" and unicodedata.category(value[0]).startswith("M"):
            continue
        tokens.append(Token(text=value, kind="punct" if kind == "nl" else kind))
    return tokens


def _english_mode(tokens: list[Token]) -> bool:
    """True when Latin words read as English rather than translit Russian."""
    english = translit = 0
    for tok in tokens:
        if tok.kind != "word" or not _LAT.search(tok.text):
            continue
        low = tok.text.lower()
        if low in lexicon.ENGLISH_WORDS:
            english += 1
        elif translit_to_russian(low):
            translit += 1
    return english > 0 and english >= translit


def _annotate(tok: Token, english: bool) -> None:
    low = tok.text.lower().replace("ё", "е")
    tok.cap = tok.text[:1].isupper()
    if _LAT.search(low) and not _CYR.search(low):
        if not (english and low in lexicon.ENGLISH_WORDS):
            russian = translit_to_russian(low)
            if russian:
                low = russian
        if not _CYR.search(low):
            tok.latin = True
            tok.known = low in lexicon.ENGLISH_WORDS
            if low in lexicon.ENGLISH_NEGATIONS:
                tok.norm = tok.lemma = "не"
                return
            tok.norm = low
            stem = _english_stem(low)
            tok.lemma = lexicon.ENGLISH_TO_LEMMA.get(stem, stem)
            return
    low = lexicon.SLANG.get(low, low)
    lemma, pos, gram, known = analyse_word(low)
    if not known and "-" not in low:
        fixed = spell_fix(low)
        if fixed:
            low = fixed
            lemma, pos, gram, known = analyse_word(low)
    tok.norm = low
    tok.lemma = lemma
    tok.pos = pos
    tok.gram = gram
    tok.known = known


def _split(doc: Doc) -> None:
    sent = clause = 0
    sentences: list[list[Token]] = [[]]
    clauses: list[list[Token]] = [[]]
    tokens = doc.tokens
    for i, tok in enumerate(tokens):
        tok.index = i
        starts_clause = False
        if tok.is_word and tok.lemma in ("но", "однако", "иначе"):
            starts_clause = True
        elif (
            tok.is_word
            and tok.norm == "и"
            and i + 1 < len(tokens)
            and (
                tokens[i + 1].lemma in CLAUSE_START_AFTER_AND
                or tokens[i + 1].norm in CLAUSE_START_AFTER_AND
            )
        ):
            starts_clause = True
        if starts_clause and clauses[-1]:
            clause += 1
            clauses.append([])
        tok.sent = sent
        tok.clause = clause
        sentences[-1].append(tok)
        clauses[-1].append(tok)
        if tok.kind == "punct" and tok.text[0] in CLAUSE_END:
            if clauses[-1]:
                clause += 1
                clauses.append([])
            if tok.text[0] in SENTENCE_END or (
                tok.text == ":" and i + 1 < len(tokens) and tokens[i + 1].text == "\n"
            ):
                if sentences[-1]:
                    sent += 1
                    sentences.append([])
    doc.sentences = [s for s in sentences if s]
    doc.clauses = [c for c in clauses if c]


def _mark_questions(doc: Doc) -> None:
    for sent in doc.sentences:
        words = [t for t in sent if t.is_word]
        if not words:
            continue
        ends_with_q = any("?" in t.text for t in sent if t.kind == "punct")
        head = words[:3]
        starts_q = any(
            t.lemma in lexicon.QUESTION_WORDS - {"что", "как", "do", "is", "are", "can"}
            or (t.lemma in lexicon.ASK_VERBS and (t.has("impr") or t.has("3per")))
            or t.lemma == "вопрос"
            for t in head
        )
        if ends_with_q or starts_q or any(t.norm == "ли" for t in words):
            doc.question_sentences.add(sent[0].sent)


def analyse(text: str) -> Doc:
    """Full analysis of one message."""
    raw = text or ""
    capped, truncated = cap_text(raw)
    capped = unicodedata.normalize("NFC", capped.replace("\r\n", "\n"))
    capped = mask_contacts(capped)
    body, form = parse_form(capped)
    script, _, _ = detect_script(body)

    tokens = _tokenize(body)
    english = _english_mode(tokens)
    words = 0
    for tok in tokens:
        if tok.kind == "word":
            _annotate(tok, english)
            words += 1
        elif tok.kind in ("num", "alnum", "time", "date"):
            tok.norm = tok.text.lower()
            tok.lemma = tok.norm
        else:
            tok.norm = tok.text
            tok.lemma = tok.text
    doc = Doc(
        raw=raw,
        text=body,
        tokens=tokens,
        form=form,
        truncated=truncated,
        script=script,
        english=english,
        words=words,
    )
    _split(doc)
    _mark_questions(doc)
    return doc
