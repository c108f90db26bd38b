"""Compare classifier output with labelled leads.

Rules of comparison:

* tags: per-tag precision, recall and F1 for the seven intents and for
  ``urgent``. A tag that no label carries (support 0) has no recall or F1;
  they are reported as ``None`` ("n/a" in the table), and macro-F1 is the
  plain mean of the F1 values of the tags with support only, so a small file
  is not marked down for tags it never uses. Its precision is ``None`` too
  unless the tag was predicted, and false alarms still show there.
* name: case-insensitive, ``ё`` read as ``е``; two nulls agree.
* service: normalised text must match exactly: lower case, ``ё`` read as
  ``е``, spaces squeezed, surrounding punctuation dropped; two nulls agree.
  ``service_partial`` also accepts one name containing the other
  ("стрижка" for "стрижка и ботокс для волос").
* desired time: two nulls agree. Otherwise both must be set and fall on the
  same local day. When the label's precision is "hour", the hour must match
  too. ``time_exact`` also requires the same precision.
* appointment time (the booked visit a cancellation or a reschedule names):
  compared like the desired time, over the records whose labels carry the
  ``appointment_time`` field only; ``None`` when no record does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .types import INTENTS

TAGS_AND_URGENT = (*INTENTS, "urgent")


def normalise_text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.lower().replace("ё", "е")
    value = re.sub(r"\s+", " ", value).strip(" .,;:!?\"'«»")
    return value or None


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def time_matches(
    gold: Mapping[str, Any], pred: Mapping[str, Any], field: str = "desired_time"
) -> bool:
    """Compare the time in ``field`` (and its ``<field>_precision``)."""
    gold_time = _parse_time(gold.get(field))
    pred_time = _parse_time(pred.get(field))
    if gold_time is None or pred_time is None:
        return gold_time is None and pred_time is None
    if gold_time.tzinfo is not None and pred_time.tzinfo is not None:
        pred_time = pred_time.astimezone(gold_time.tzinfo)
    if gold_time.date() != pred_time.date():
        return False
    if gold.get(f"{field}_precision") == "hour":
        return pred_time.hour == gold_time.hour
    return True


def _tag_set(record: Mapping[str, Any]) -> set[str]:
    tags = set(record.get("tags") or [])
    if record.get("urgent"):
        tags.add("urgent")
    return tags


def evaluate(
    gold: Iterable[Mapping[str, Any]], predicted: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """Metrics for aligned label and prediction records (same order)."""
    counts = {tag: {"tp": 0, "fp": 0, "fn": 0} for tag in TAGS_AND_URGENT}
    n = name_ok = service_ok = service_partial = time_ok = time_exact = 0
    exact_tags = 0
    appointment_n = appointment_ok = 0
    for g, p in zip(gold, predicted, strict=True):
        n += 1
        g_tags, p_tags = _tag_set(g), _tag_set(p)
        exact_tags += g_tags == p_tags
        for tag in TAGS_AND_URGENT:
            if tag in g_tags and tag in p_tags:
                counts[tag]["tp"] += 1
            elif tag in p_tags:
                counts[tag]["fp"] += 1
            elif tag in g_tags:
                counts[tag]["fn"] += 1

        name_ok += normalise_text(g.get("name")) == normalise_text(p.get("name"))
        g_service = normalise_text(g.get("service"))
        p_service = normalise_text(p.get("service"))
        service_ok += g_service == p_service
        service_partial += g_service == p_service or bool(
            g_service
            and p_service
            and (g_service in p_service or p_service in g_service)
        )
        matched = time_matches(g, p)
        time_ok += matched
        time_exact += matched and g.get("desired_time_precision") == p.get(
            "desired_time_precision"
        )
        if "appointment_time" in g:
            appointment_n += 1
            appointment_ok += time_matches(g, p, "appointment_time")

    per_tag: dict[str, dict[str, Any]] = {}
    for tag, c in counts.items():
        support = c["tp"] + c["fn"]
        predicted_n = c["tp"] + c["fp"]
        precision = c["tp"] / predicted_n if predicted_n else None
        recall = c["tp"] / support if support else None
        f1 = None
        if support:
            p_value, r_value = precision or 0.0, recall or 0.0
            f1 = (
                2 * p_value * r_value / (p_value + r_value)
                if p_value + r_value
                else 0.0
            )
        per_tag[tag] = {
            "precision": precision if support or predicted_n else None,
            "recall": recall,
            "f1": f1,
            "support": support,
        }
    scored = [per_tag[t]["f1"] for t in TAGS_AND_URGENT if per_tag[t]["f1"] is not None]
    macro = sum(scored) / len(scored) if scored else None
    safe = max(n, 1)
    return {
        "count": n,
        "per_tag": per_tag,
        "macro_f1": macro,
        "macro_tags": len(scored),
        "exact_tags": exact_tags / safe,
        "name_accuracy": name_ok / safe,
        "service_accuracy": service_ok / safe,
        "service_partial": service_partial / safe,
        "time_accuracy": time_ok / safe,
        "time_exact": time_exact / safe,
        "appointment_accuracy": (
            appointment_ok / appointment_n if appointment_n else None
        ),
        "appointment_labelled": appointment_n,
    }


def _cell(value: float | None, width: int) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.3f}"


def format_table(metrics: Mapping[str, Any]) -> str:
    """Plain-text table of ``evaluate`` output."""
    lines = [f"{'tag':<12}{'prec':>7}{'recall':>8}{'f1':>7}{'support':>9}"]
    for tag in TAGS_AND_URGENT:
        row = metrics["per_tag"][tag]
        lines.append(
            f"{tag:<12}{_cell(row['precision'], 7)}{_cell(row['recall'], 8)}"
            f"{_cell(row['f1'], 7)}{row['support']:>9d}"
        )
    lines.append("")
    macro_tags = metrics.get("macro_tags", len(TAGS_AND_URGENT))
    note = (
        ""
        if macro_tags == len(TAGS_AND_URGENT)
        else f"  (over {macro_tags} tags with support; others n/a)"
    )
    lines.append(f"{'macro-F1':<20}{_cell(metrics['macro_f1'], 0).strip()}{note}")
    lines.append(f"{'exact tag sets':<20}{metrics['exact_tags']:.3f}")
    lines.append(f"{'name':<20}{metrics['name_accuracy']:.3f}")
    lines.append(
        f"{'service':<20}{metrics['service_accuracy']:.3f}"
        f"  (partial {metrics['service_partial']:.3f})"
    )
    lines.append(
        f"{'desired time':<20}{metrics['time_accuracy']:.3f}"
        f"  (with precision {metrics['time_exact']:.3f})"
    )
    if metrics.get("appointment_accuracy") is not None:
        lines.append(
            f"{'appointment time':<20}{metrics['appointment_accuracy']:.3f}"
            f"  (over {metrics['appointment_labelled']} labelled records)"
        )
    lines.append(f"{'records':<20}{metrics['count']}")
    return "\n".join(lines)
