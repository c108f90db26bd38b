"""Throughput of the offline lead classifier on one core.

Runs the offline engine and a plain lower-case keyword matcher over the same
messages, side by side. Prints messages per second, mean, p50 and p95
milliseconds per message, and how many times slower the engine is than the
keyword baseline. The first pass (resource loading, cold caches) is reported
apart from the warm passes.

    .venv/bin/python bench/classify.py [--messages 5000] [--file leads.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from b24app.tagging import OfflineEngine  # noqa: E402

DEFAULT_FILES = [
    REPO_ROOT.parent / "shared" / "datasets" / "leads-dev.jsonl",
    *sorted((REPO_ROOT / "tests" / "tagging" / "data").glob("*.jsonl")),
]

BASELINE_KEYWORDS = {
    "booking": ("запис", "хочу на", "можно на", "окошк", "book"),
    "price": ("сколько стоит", "цена", "стоимость", "прайс", "price"),
    "reschedule": ("перенес", "перенос", "сдвинуть"),
    "cancel": ("отмен", "не приду", "не смогу"),
    "complaint": ("жалоб", "ужас", "безобраз", "верните", "хамств"),
    "question": ("?", "подскажите"),
    "spam": ("заработ", "продвижен", "вакансия", "резюме"),
}


def keyword_baseline(text: str) -> list[str]:
    low = text.lower()
    tags = [
        tag for tag, words in BASELINE_KEYWORDS.items() if any(w in low for w in words)
    ]
    return tags or ["question"]


def load_messages(files: list[Path]) -> list[tuple[str, datetime]]:
    messages = []
    for path in files:
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    received = datetime.fromisoformat(record["received_at"])
                    messages.append((record["text"], received))
    return messages


def timed(
    run: Callable[[str, datetime], object], batch: list[tuple[str, datetime]]
) -> list[float]:
    durations = []
    for text, received in batch:
        start = time.perf_counter_ns()
        run(text, received)
        durations.append((time.perf_counter_ns() - start) / 1e6)
    return durations


def summary(name: str, durations: list[float]) -> dict[str, float]:
    ordered = sorted(durations)
    total_s = sum(ordered) / 1000
    stats = {
        "msg_per_s": len(ordered) / total_s if total_s else float("inf"),
        "mean_ms": statistics.fmean(ordered),
        "p50_ms": ordered[len(ordered) // 2],
        "p95_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
    }
    print(
        f"{name:<22}{stats['msg_per_s']:>12,.0f}{stats['mean_ms']:>10.3f}"
        f"{stats['p50_ms']:>10.3f}{stats['p95_ms']:>10.3f}"
    )
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--file", type=Path, action="append")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    messages = load_messages(args.file or DEFAULT_FILES)
    if not messages:
        sys.exit("no messages found; pass --file")
    engine = OfflineEngine()

    def offline(text: str, received: datetime) -> object:
        return engine.classify(text, received)

    def baseline(text: str, received: datetime) -> object:
        return keyword_baseline(text)

    repeats = max(1, args.messages // len(messages))
    warm_batch = messages * repeats
    print(f"{len(messages)} distinct messages, {len(warm_batch)} per warm run, 1 core")
    print(f"{'':<22}{'msg/s':>12}{'mean ms':>10}{'p50 ms':>10}{'p95 ms':>10}")

    cold = summary("offline, first pass", timed(offline, messages))
    warm = summary("offline, warm", timed(offline, warm_batch))
    base = summary("keyword baseline", timed(baseline, warm_batch))
    print()
    print(f"first pass includes loading: {cold['mean_ms'] * len(messages):,.0f} ms")
    ratio = warm["mean_ms"] / base["mean_ms"]
    print(f"offline / baseline time per message: {ratio:,.0f}x")
    verdict = "met" if warm["msg_per_s"] >= 1000 else "MISSED"
    print(f"warm throughput bar (>= 1000 msg/s): {verdict}")


if __name__ == "__main__":
    main()
