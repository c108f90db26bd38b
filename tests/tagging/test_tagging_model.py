"""Model engine against a fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from b24app.tagging import LRUCache, ModelEngine, OfflineEngine, build_engine

from .conftest import FakeChatServer

RECEIVED = datetime(2026, 3, 14, 10, 0, tzinfo=ZoneInfo("Europe/Moscow"))
TEXT = "Здравствуйте, это Анна, запишите на маникюр завтра в 15"
SECRET_TEXT = (
    "Запишите на маникюр, мой телефон +7 (916) 123-45-67, запасной 8 900 555 44 33, "
    "почта anna.k@example.com"
)


def _engine(server: FakeChatServer, **kwargs) -> ModelEngine:
    options = {"timeout": 0.5, "max_retries": 1}
    options.update(kwargs)
    return ModelEngine(server.base_url, "test-model", "test-key", **options)


def test_model_good_answer_engine(chat_server: FakeChatServer) -> None:
    assert _engine(chat_server).classify(TEXT, RECEIVED).engine == "model"


def test_model_good_answer_fields(chat_server: FakeChatServer) -> None:
    result = _engine(chat_server).classify(TEXT, RECEIVED)
    assert (result.tags, result.name, result.desired_time_precision) == (
        ["booking"],
        "Анна",
        "hour",
    )


def test_model_sends_json_response_format(chat_server: FakeChatServer) -> None:
    _engine(chat_server).classify(TEXT, RECEIVED)
    assert chat_server.requests[0]["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("mode", ["invalid_json", "schema_invalid", "http500"])
def test_model_bad_answer_falls_back(chat_server: FakeChatServer, mode: str) -> None:
    chat_server.mode = mode
    assert _engine(chat_server).classify(TEXT, RECEIVED).engine == "offline"


@pytest.mark.parametrize("mode", ["invalid_json", "schema_invalid", "http500"])
def test_model_fallback_keeps_offline_tags(
    chat_server: FakeChatServer, mode: str
) -> None:
    chat_server.mode = mode
    expected = OfflineEngine().classify(TEXT, RECEIVED).tags
    assert _engine(chat_server).classify(TEXT, RECEIVED).tags == expected


@pytest.mark.parametrize("retries", [0, 1, 2])
def test_model_retry_count(chat_server: FakeChatServer, retries: int) -> None:
    chat_server.mode = "http500"
    _engine(chat_server, max_retries=retries).classify(TEXT, RECEIVED)
    assert len(chat_server.requests) == retries + 1


@pytest.mark.timeout(20)
def test_model_slow_server_falls_back(chat_server: FakeChatServer) -> None:
    chat_server.mode = "slow"
    result = _engine(chat_server, timeout=0.3, max_retries=1).classify(TEXT, RECEIVED)
    assert result.engine == "offline"


@pytest.mark.timeout(20)
def test_model_slow_server_retries_within_bound(chat_server: FakeChatServer) -> None:
    chat_server.mode = "slow"
    _engine(chat_server, timeout=0.3, max_retries=1).classify(TEXT, RECEIVED)
    assert len(chat_server.requests) <= 2


@pytest.mark.timeout(20)
def test_model_deadline_gives_offline_result(chat_server: FakeChatServer) -> None:
    chat_server.mode = "slow"
    result = _engine(chat_server, timeout=5.0).classify(TEXT, RECEIVED, deadline=0.3)
    assert result.engine == "offline"


def test_model_zero_deadline_sends_nothing(chat_server: FakeChatServer) -> None:
    _engine(chat_server).classify(TEXT, RECEIVED, deadline=0)
    assert chat_server.requests == []


def test_model_cache_second_call_skips_server(chat_server: FakeChatServer) -> None:
    engine = _engine(chat_server)
    engine.classify(TEXT, RECEIVED)
    engine.classify(
        "  здравствуйте, ЭТО Анна, запишите на маникюр завтра в 15 ", RECEIVED
    )
    assert len(chat_server.requests) == 1


def test_model_cache_hit_is_model_result(chat_server: FakeChatServer) -> None:
    engine = _engine(chat_server)
    engine.classify(TEXT, RECEIVED)
    assert engine.classify(TEXT, RECEIVED).engine == "model"


def test_model_cache_key_includes_day(chat_server: FakeChatServer) -> None:
    engine = _engine(chat_server)
    engine.classify(TEXT, RECEIVED)
    engine.classify(TEXT, RECEIVED.replace(day=15))
    assert len(chat_server.requests) == 2


def test_model_fallback_is_not_cached(chat_server: FakeChatServer) -> None:
    chat_server.mode = "http500"
    engine = _engine(chat_server, max_retries=0)
    engine.classify(TEXT, RECEIVED)
    chat_server.mode = "good"
    assert engine.classify(TEXT, RECEIVED).engine == "model"


def test_model_masks_phones(chat_server: FakeChatServer) -> None:
    _engine(chat_server).classify(SECRET_TEXT, RECEIVED)
    body = chat_server.raw_bodies[0]
    assert "123-45-67" not in body
    assert "555 44 33" not in body


def test_model_masks_email(chat_server: FakeChatServer) -> None:
    _engine(chat_server).classify(SECRET_TEXT, RECEIVED)
    assert "anna.k@example.com" not in chat_server.raw_bodies[0]


def test_model_prompt_keeps_message(chat_server: FakeChatServer) -> None:
    _engine(chat_server).classify(SECRET_TEXT, RECEIVED)
    assert "Запишите на маникюр" in chat_server.raw_bodies[0]


def test_model_fallback_log_has_no_text(
    chat_server: FakeChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    chat_server.mode = "schema_invalid"
    with caplog.at_level(logging.WARNING, logger="b24app.tagging.model"):
        _engine(chat_server).classify(SECRET_TEXT, RECEIVED)
    assert "fell back" in caplog.text
    assert "маникюр" not in caplog.text


def test_lru_cache_evicts_oldest() -> None:
    cache = LRUCache(maxsize=2)
    result = OfflineEngine().classify("Сколько стоит УЗИ?", RECEIVED)
    for key in ("a", "b", "c"):
        cache.set(key, result)
    assert (cache.get("a"), len(cache)) == (None, 2)


def test_build_engine_default_offline() -> None:
    assert isinstance(build_engine({}), OfflineEngine)


def test_build_engine_model(chat_server: FakeChatServer) -> None:
    engine = build_engine(
        {
            "engine": "model",
            "base_url": chat_server.base_url,
            "model": "test-model",
            "api_key": "k",
            "timeout": 1.0,
        }
    )
    assert isinstance(engine, ModelEngine)


def test_build_engine_model_needs_base_url() -> None:
    with pytest.raises(ValueError):
        build_engine({"engine": "model", "model": "m", "api_key": "k"})


def test_build_engine_unknown() -> None:
    with pytest.raises(ValueError):
        build_engine({"engine": "magic"})
