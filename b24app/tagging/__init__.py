"""Lead intent tagging: offline rules or an OpenAI-compatible model.

``build_engine(settings)`` returns an object with
``classify(text, received_at, tz="Europe/Moscow") -> Classification``.
"""

from __future__ import annotations

from .model import LRUCache, ModelEngine, build_engine
from .offline import OfflineEngine
from .types import INTENTS, RU_LABELS, Classification

__all__ = [
    "INTENTS",
    "RU_LABELS",
    "Classification",
    "LRUCache",
    "ModelEngine",
    "OfflineEngine",
    "build_engine",
]
