"""Result type shared by the offline and the model engines."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

INTENTS: tuple[str, ...] = (
    "booking",
    "price",
    "reschedule",
    "cancel",
    "complaint",
    "question",
    "spam",
)

# Labels shown to managers in the CRM card; "urgent" and "review" are flags,
# not intents, but they are rendered as tags too.
RU_LABELS: dict[str, str] = {
    "booking": "Запись",
    "price": "Цена",
    "reschedule": "Перенос",
    "cancel": "Отмена",
    "complaint": "Жалоба",
    "question": "Вопрос",
    "spam": "Спам",
    "urgent": "Срочно",
    "review": "Проверить",
}

Precision = Literal["hour", "day"]

# A chosen tag (or the urgent decision) below this confidence marks the lead
# for a manager to check.
LOW_CONFIDENCE = 0.6


@dataclass
class Classification:
    """Tags and details extracted from one incoming lead message."""

    tags: list[str]
    urgent: bool
    name: str | None = None
    service: str | None = None
    desired_time: datetime | None = None
    desired_time_precision: Precision | None = None
    # Start of the client's existing appointment that a cancellation or a
    # reschedule refers to. The new time of a reschedule is ``desired_time``.
    appointment_time: datetime | None = None
    appointment_time_precision: Precision | None = None
    confidence: dict[str, float] = field(default_factory=dict)
    engine: str = "offline"
    explanation: str = ""
    needs_review: bool = False

    def __post_init__(self) -> None:
        unknown = [tag for tag in self.tags if tag not in INTENTS]
        if unknown:
            raise ValueError(f"unknown tags: {unknown}")
        if not self.tags:
            raise ValueError("tags must not be empty")
        if "spam" in self.tags and len(self.tags) > 1:
            raise ValueError("spam excludes all other tags")
        if self.desired_time is not None and self.desired_time.tzinfo is None:
            raise ValueError("desired_time must be timezone-aware")
        if self.appointment_time is not None and self.appointment_time.tzinfo is None:
            raise ValueError("appointment_time must be timezone-aware")

    def decision_confidence(self) -> float:
        """Lowest confidence among the chosen tags and the urgent decision."""
        values = [self.confidence.get(tag, 0.0) for tag in self.tags]
        urgent = self.confidence.get("urgent", 0.0)
        values.append(urgent if self.urgent else 1.0 - urgent)
        return min(values)

    def ru_tags(self) -> list[str]:
        """Russian labels for the CRM card, flags included."""
        labels = [RU_LABELS[tag] for tag in self.tags]
        if self.urgent:
            labels.append(RU_LABELS["urgent"])
        if self.needs_review:
            labels.append(RU_LABELS["review"])
        return labels

    def to_json(self) -> dict[str, Any]:
        """Return the record fields written by ``b24app classify``, without ``id``."""
        return {
            "tags": list(self.tags),
            "urgent": self.urgent,
            "name": self.name,
            "service": self.service,
            "desired_time": (
                self.desired_time.isoformat() if self.desired_time else None
            ),
            "desired_time_precision": self.desired_time_precision,
            "appointment_time": (
                self.appointment_time.isoformat() if self.appointment_time else None
            ),
            "appointment_time_precision": self.appointment_time_precision,
            "confidence": {k: round(v, 3) for k, v in self.confidence.items()},
            "engine": self.engine,
            "explanation": self.explanation,
            "needs_review": self.needs_review,
        }
