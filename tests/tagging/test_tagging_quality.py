"""Quality bars of the offline engine on labelled leads."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from b24app.tagging import OfflineEngine
from b24app.tagging.evaluate import evaluate, format_table

from .conftest import DEV_SET, OWN_SETS, load_jsonl

# Call-back requests, urgent leads, and cancellations and reschedules that
# name the booked visit, labelled with ``appointment_time`` as well.
EXTRA_SET = Path(__file__).parent / "data" / "extra_messages.jsonl"


def _metrics(engine: OfflineEngine, path: Path) -> dict[str, Any]:
    records = load_jsonl(path)
    predicted = [
        engine.classify(r["text"], datetime.fromisoformat(r["received_at"])).to_json()
        for r in records
    ]
    return evaluate(records, predicted)


@pytest.fixture(scope="module")
def dev_metrics(engine: OfflineEngine) -> dict[str, Any]:
    if not DEV_SET.exists():
        if os.environ.get("CI"):
            pytest.fail(f"labelled dev set missing: {DEV_SET}")
        pytest.skip(f"labelled dev set missing: {DEV_SET}")
    return _metrics(engine, DEV_SET)


def test_quality_dev_macro_f1(dev_metrics: dict[str, Any]) -> None:
    assert dev_metrics["macro_f1"] >= 0.85, format_table(dev_metrics)


def test_quality_dev_desired_time(dev_metrics: dict[str, Any]) -> None:
    assert dev_metrics["time_accuracy"] >= 0.85, format_table(dev_metrics)


def test_quality_dev_name(dev_metrics: dict[str, Any]) -> None:
    assert dev_metrics["name_accuracy"] >= 0.90, format_table(dev_metrics)


@pytest.mark.parametrize("path", OWN_SETS, ids=lambda p: p.name)
def test_quality_own_sets_macro_f1(engine: OfflineEngine, path: Path) -> None:
    metrics = _metrics(engine, path)
    assert metrics["macro_f1"] >= 0.85, format_table(metrics)


@pytest.mark.parametrize("path", OWN_SETS, ids=lambda p: p.name)
def test_quality_own_sets_desired_time(engine: OfflineEngine, path: Path) -> None:
    metrics = _metrics(engine, path)
    assert metrics["time_accuracy"] >= 0.85, format_table(metrics)


def test_evaluate_counts_per_tag() -> None:
    gold = [{"tags": ["booking"], "urgent": True}, {"tags": ["price"], "urgent": False}]
    pred = [
        {"tags": ["booking"], "urgent": False},
        {"tags": ["booking"], "urgent": False},
    ]
    booking = evaluate(gold, pred)["per_tag"]["booking"]
    assert (booking["precision"], booking["recall"]) == (0.5, 1.0)


def test_evaluate_time_day_precision_ignores_hour() -> None:
    gold = [
        {
            "tags": ["booking"],
            "desired_time": "2026-03-15T00:00:00+03:00",
            "desired_time_precision": "day",
        }
    ]
    pred = [{"tags": ["booking"], "desired_time": "2026-03-15T18:00:00+03:00"}]
    assert evaluate(gold, pred)["time_accuracy"] == 1.0


def test_evaluate_service_normalised() -> None:
    gold = [{"tags": ["booking"], "service": "Приём терапевта"}]
    pred = [{"tags": ["booking"], "service": "прием терапевта "}]
    assert evaluate(gold, pred)["service_accuracy"] == 1.0


def test_format_table_lists_macro_f1() -> None:
    gold = [{"tags": ["booking"], "urgent": False}]
    assert "macro-F1" in format_table(evaluate(gold, gold))


def test_evaluate_macro_f1_skips_unsupported() -> None:
    gold = [{"tags": ["booking"], "urgent": False}]
    assert evaluate(gold, gold)["macro_f1"] == 1.0


def test_evaluate_tag_without_support_has_no_f1() -> None:
    gold = [{"tags": ["booking"], "urgent": False}]
    assert evaluate(gold, gold)["per_tag"]["cancel"]["f1"] is None


def test_evaluate_false_alarm_keeps_precision() -> None:
    gold = [{"tags": ["booking"], "urgent": False}]
    pred = [{"tags": ["booking", "cancel"], "urgent": False}]
    assert evaluate(gold, pred)["per_tag"]["cancel"]["precision"] == 0.0


def test_format_table_marks_na() -> None:
    gold = [{"tags": ["booking"], "urgent": False}]
    assert "n/a" in format_table(evaluate(gold, gold))


@pytest.fixture(scope="module")
def extra_metrics(engine: OfflineEngine) -> dict[str, Any]:
    return _metrics(engine, EXTRA_SET)


def test_quality_extra_macro_f1(extra_metrics: dict[str, Any]) -> None:
    assert extra_metrics["macro_f1"] >= 0.9, format_table(extra_metrics)


@pytest.mark.parametrize(
    "tag", ["booking", "reschedule", "cancel", "question", "urgent"]
)
def test_quality_extra_tag_f1(extra_metrics: dict[str, Any], tag: str) -> None:
    assert extra_metrics["per_tag"][tag]["f1"] >= 0.85, format_table(extra_metrics)


def test_quality_extra_desired_time(extra_metrics: dict[str, Any]) -> None:
    assert extra_metrics["time_accuracy"] >= 0.9, format_table(extra_metrics)


def test_quality_extra_appointment_time(extra_metrics: dict[str, Any]) -> None:
    assert extra_metrics["appointment_labelled"] == extra_metrics["count"]
    assert extra_metrics["appointment_accuracy"] >= 0.9, format_table(extra_metrics)


def test_quality_extra_name_and_service(extra_metrics: dict[str, Any]) -> None:
    assert extra_metrics["name_accuracy"] >= 0.9, format_table(extra_metrics)
    assert extra_metrics["service_accuracy"] >= 0.9, format_table(extra_metrics)
