"""Model engine: an OpenAI-compatible chat model with the offline rules as
the safety net.

Every failure (timeout, HTTP error, invalid JSON, a reply outside the
schema) ends in the offline result, so a lead is always tagged. Phone
numbers and e-mails are masked before the text leaves the app; results are
cached by a hash of the normalised text, the arrival day, the time zone and
the model name.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import re
import threading
import time as clock
from collections import OrderedDict
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import jsonschema
import openai

from .offline import OfflineEngine
from .text import cap_text, mask_for_prompt
from .types import INTENTS, LOW_CONFIDENCE, Classification, Precision

logger = logging.getLogger(__name__)

WEEKDAYS_RU = (
    "понедельник",
    "вторник",
    "среда",
    "четверг",
    "пятница",
    "суббота",
    "воскресенье",
)

SYSTEM_PROMPT = """Ты размечаешь входящие заявки клиентов салонов красоты, клиник \
и фитнес-студий. Ответь одним JSON-объектом без пояснений вокруг.
Поля:
- tags: непустой список из booking, price, reschedule, cancel, complaint, \
question, spam.
  booking — новая запись на визит, занятие, консультацию; обратный звонок только \
с именем и телефоном тоже booking.
  Просьба перезвонить без имени, телефона, услуги и жалоб на здоровье, а также \
«не могу дозвониться» — question.
  price — стоимость, скидки, прайс, способы оплаты.
  reschedule — перенос уже назначенного визита.
  cancel — отмена визита или абонемента, «не приду».
  complaint — недовольство: плохая услуга, грубость, опоздание, возврат денег.
  question — другой вопрос по делу: адрес, часы, подготовка, противопоказания.
  spam — не по делу: реклама, соискатели, боты, ошибся номером, бессмыслица; \
spam исключает остальные теги.
- urgent: true, если ответ или визит нужен сегодня или прямо сейчас (острая \
боль, «срочно», отмена или перенос сегодняшнего визита).
- name: имя клиента, если он его назвал, иначе null.
- service: краткое название услуги по-русски («маникюр», «приём терапевта», \
«персональная тренировка»), иначе null.
- desired_time: желаемое время визита в ISO 8601 с часовым поясом, вычисленное \
от момента получения; для отмены null, для переноса новое время; день без часа \
— полночь этого дня.
- desired_time_precision: "hour", "day" или null.
- appointment_time: начало уже назначенного визита, который клиент отменяет или \
переносит, в том же формате; иначе null.
- appointment_time_precision: "hour", "day" или null.
- confidence: уверенность 0..1 по каждому выбранному тегу и по "urgent".
- explanation: одно-два коротких предложения по-русски, почему такие теги."""

ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "tags",
        "urgent",
        "name",
        "service",
        "desired_time",
        "desired_time_precision",
    ],
    "properties": {
        "tags": {
            "type": "array",
            "items": {"enum": list(INTENTS)},
            "minItems": 1,
            "uniqueItems": True,
        },
        "urgent": {"type": "boolean"},
        "name": {"type": ["string", "null"], "maxLength": 60},
        "service": {"type": ["string", "null"], "maxLength": 80},
        "desired_time": {"type": ["string", "null"], "maxLength": 40},
        "desired_time_precision": {"enum": ["hour", "day", None]},
        "appointment_time": {"type": ["string", "null"], "maxLength": 40},
        "appointment_time_precision": {"enum": ["hour", "day", None]},
        "confidence": {
            "type": "object",
            "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "explanation": {"type": "string", "maxLength": 400},
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(ANSWER_SCHEMA)


class Cache(Protocol):
    """Result cache interface used by the model engine."""

    def get(self, key: str) -> Classification | None: ...

    def set(self, key: str, value: Classification) -> None: ...


class LRUCache:
    """Small in-process cache; a database-backed one can take its place."""

    def __init__(self, maxsize: int = 1024) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[str, Classification] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Classification | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def set(self, key: str, value: Classification) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class ModelFailure(Exception):
    """Failed model call. ``reason`` contains no message text, so it is safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalise_for_cache(text: str) -> str:
    return re.sub(r"\s+", " ", (text or "").strip().lower().replace("ё", "е"))


def cache_key(text: str, received_at: datetime, tz: str, model: str) -> str:
    local_day = received_at.astimezone(ZoneInfo(tz)).date().isoformat()
    raw = "\x1f".join((normalise_for_cache(text), local_day, tz, model))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class ModelEngine:
    """Classifier backed by a chat model at an OpenAI-compatible endpoint."""

    name = "model"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str,
        timeout: float = 4.0,
        max_retries: int = 1,
        fallback: Any | None = None,
        cache: Cache | None = None,
    ) -> None:
        if not base_url:
            raise ValueError("base_url is required for the model engine")
        if not model:
            raise ValueError("model is required for the model engine")
        self.model = model
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.fallback = fallback if fallback is not None else OfflineEngine()
        self.cache: Cache = cache if cache is not None else LRUCache()
        # Retries are counted here, not inside the client, so that the total
        # time stays bounded.
        self._client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or "unused",
            timeout=self.timeout,
            max_retries=0,
        )
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="tagging-model"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def classify(
        self,
        text: str,
        received_at: datetime,
        tz: str = "Europe/Moscow",
        deadline: float | None = None,
    ) -> Classification:
        """Tag one message; ``deadline`` caps the whole call in seconds."""
        zone = ZoneInfo(tz)
        if received_at.tzinfo is None:
            received_at = received_at.replace(tzinfo=zone)
        key = cache_key(text, received_at, tz, self.model)
        cached = self.cache.get(key)
        if cached is not None:
            return dataclasses.replace(cached, confidence=dict(cached.confidence))

        budget = self.timeout * (self.max_retries + 1)
        if deadline is not None:
            budget = min(budget, max(0.0, float(deadline)))
        started = clock.monotonic()
        messages = self._messages(text, received_at, tz)
        reason = "no attempt"
        attempts = 0
        while attempts <= self.max_retries:
            remaining = budget - (clock.monotonic() - started)
            if remaining <= 0.01:
                reason = "deadline reached"
                break
            attempts += 1
            try:
                answer = self._ask(messages, min(self.timeout, remaining))
                result = self._to_classification(answer, received_at, zone)
            except ModelFailure as failure:
                reason = failure.reason
                continue
            self.cache.set(key, result)
            return dataclasses.replace(result, confidence=dict(result.confidence))

        logger.warning(
            "model engine fell back to offline rules: %s (%d attempt(s))",
            reason,
            attempts,
        )
        return self.fallback.classify(text, received_at, tz)

    # --- request ------------------------------------------------------------

    def _messages(
        self, text: str, received_at: datetime, tz: str
    ) -> list[dict[str, str]]:
        local = received_at.astimezone(ZoneInfo(tz))
        capped, _ = cap_text(text or "")
        body = (
            f"Получено: {local.isoformat(timespec='minutes')} "
            f"({WEEKDAYS_RU[local.weekday()]}), часовой пояс {tz}.\n"
            f"Сообщение:\n{mask_for_prompt(capped)}"
        )
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": body},
        ]

    def _ask(self, messages: list[dict[str, str]], timeout: float) -> dict[str, Any]:
        future = self._pool.submit(self._request, messages, timeout)
        try:
            # The client's own timeout ends the thread; this bound also covers
            # a server that trickles bytes.
            return future.result(timeout=timeout + 0.05)
        except concurrent.futures.TimeoutError as err:
            future.cancel()
            raise ModelFailure("timeout") from err

    def _request(
        self, messages: list[dict[str, str]], timeout: float
    ) -> dict[str, Any]:
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=messages,
                response_format={"type": "json_object"},
                temperature=0,
                timeout=timeout,
            )
        except openai.APITimeoutError as err:
            raise ModelFailure("timeout") from err
        except openai.APIStatusError as err:
            raise ModelFailure(f"http {err.status_code}") from err
        except openai.APIError as err:
            raise ModelFailure(f"api error: {type(err).__name__}") from err
        except Exception as err:  # noqa: BLE001 - any client failure falls back
            raise ModelFailure(f"client error: {type(err).__name__}") from err

        try:
            content = response.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError) as err:
            raise ModelFailure("malformed response") from err
        try:
            answer = json.loads(content)
        except json.JSONDecodeError as err:
            raise ModelFailure("invalid json") from err
        if not isinstance(answer, dict):
            raise ModelFailure("invalid json")
        error = next(iter(_VALIDATOR.iter_errors(answer)), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "answer"
            raise ModelFailure(f"schema: {error.validator} at {where}")
        return answer

    # --- reply --------------------------------------------------------------

    def _to_classification(
        self, answer: dict[str, Any], received_at: datetime, zone: ZoneInfo
    ) -> Classification:
        tags = [t for t in INTENTS if t in answer["tags"]]
        if "spam" in tags:
            tags = ["spam"]

        desired, precision = _answer_time(answer, "desired_time", zone)
        appointment, appointment_precision = _answer_time(
            answer, "appointment_time", zone
        )

        given = answer.get("confidence") or {}
        confidence = {
            tag: float(given.get(tag, 0.8 if tag in tags else 0.1)) for tag in INTENTS
        }
        urgent = bool(answer["urgent"]) and tags != ["spam"]
        confidence["urgent"] = float(given.get("urgent", 0.8 if urgent else 0.1))

        result = Classification(
            tags=tags,
            urgent=urgent,
            name=answer.get("name") or None,
            service=answer.get("service") or None,
            desired_time=desired,
            desired_time_precision=precision,
            appointment_time=appointment,
            appointment_time_precision=appointment_precision,
            confidence=confidence,
            engine="model",
            explanation=(answer.get("explanation") or "Ответ модели.").strip(),
        )
        result.needs_review = result.decision_confidence() < LOW_CONFIDENCE
        return result


def _answer_time(
    answer: dict[str, Any], field: str, zone: ZoneInfo
) -> tuple[datetime | None, Precision | None]:
    """Parse a time field of the model's reply and its ``<field>_precision``.
    A time without precision counts as an hour, and a day starts at midnight."""
    value = answer.get(field)
    if not value:
        return None, None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as err:
        raise ModelFailure(f"schema: {field} is not ISO 8601") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    moment = moment.astimezone(zone)
    precision = answer.get(f"{field}_precision") or "hour"
    if precision == "day":
        moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment, precision


def build_engine(settings: dict[str, Any]) -> OfflineEngine | ModelEngine:
    """Engine chosen by ``settings["engine"]``: "offline" (default) or "model"."""
    kind = (settings.get("engine") or "offline").strip().lower()
    if kind == "offline":
        return OfflineEngine()
    if kind == "model":
        return ModelEngine(
            base_url=settings.get("base_url") or "",
            model=settings.get("model") or "",
            api_key=settings.get("api_key") or "",
            timeout=float(settings.get("timeout") or 4.0),
            max_retries=int(settings.get("max_retries", 1)),
            cache=settings.get("cache"),
        )
    raise ValueError(f"unknown tagging engine: {kind!r}")
