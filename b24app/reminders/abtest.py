"""A/B tests of reminder texts and timing.

Each appointment gets a variant by a hash of the experiment and the
appointment's source key, so the same appointment always lands in the same
variant, across workers and restarts. Outcomes are the confirmation rate
(confirmed before the visit) and the no-show rate (of visits with a known
outcome). Rates carry Wilson score intervals; each variant is compared with
the control by a two-sided two-proportion z-test. No verdict is given before
every variant has the minimum sample, and a winner needs p below alpha
after a Bonferroni correction over the comparisons.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

ALPHA = 0.05
Z_95 = 1.959963984540054
METRICS = ("no_show", "confirmation")
MAX_VARIANTS = 10
# Appointment.variant stores the code in a String(32) column.
MAX_CODE = 32


class ExperimentError(ValueError):
    """An experiment definition that cannot run."""


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when there is no data."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_z(s1: int, n1: int, s2: int, n2: int) -> tuple[float, float]:
    """z statistic and two-sided p-value of H0: p1 == p2 (pooled variance)."""
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    pooled = (s1 + s2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance == 0:
        return 0.0, 1.0
    z = (s1 / n1 - s2 / n2) / math.sqrt(variance)
    return z, 2 * (1 - normal_cdf(abs(z)))


def validate_variants(variants: Any) -> list[dict[str, Any]]:
    """Check codes, weights and exactly one control; return them cleaned."""
    if not isinstance(variants, list) or len(variants) < 2:
        raise ExperimentError("Нужно хотя бы два варианта, один из них — контрольный.")
    if len(variants) > MAX_VARIANTS or not all(isinstance(v, dict) for v in variants):
        raise ExperimentError(
            f"Варианты — от 2 до {MAX_VARIANTS} объектов с кодом, весом, "
            "шаблонами и расписанием."
        )
    codes = [str(v.get("code") or "").strip() for v in variants]
    if any(not code for code in codes) or len(set(codes)) != len(codes):
        raise ExperimentError("У каждого варианта должен быть свой непустой код.")
    if any(len(code) > MAX_CODE for code in codes):
        raise ExperimentError(f"Код варианта — не длиннее {MAX_CODE} символов.")
    controls = [v for v in variants if v.get("control")]
    if len(controls) != 1:
        raise ExperimentError("Ровно один вариант должен быть контрольным.")
    cleaned = []
    for code, variant in zip(codes, variants, strict=True):
        weight = variant.get("weight", 1)
        if (
            not isinstance(weight, int | float)
            or isinstance(weight, bool)
            or not math.isfinite(weight)
            or not 0 < weight <= 1000
        ):
            raise ExperimentError(f"Вес варианта {code} — число от 0 до 1000.")
        texts = variant.get("templates") or {}
        steps = variant.get("schedule") or []
        if not isinstance(texts, dict) or not isinstance(steps, list):
            raise ExperimentError(
                f"Вариант {code}: шаблоны — объект, расписание — список шагов."
            )
        cleaned.append(
            {
                "code": code,
                "control": bool(variant.get("control")),
                "weight": float(weight),
                "templates": dict(texts),
                "schedule": list(steps),
            }
        )
    return cleaned


def assign(experiment_id: int, unit_key: str, variants: list[dict[str, Any]]) -> str:
    """Return the stable variant of one appointment, weighted by ``weight``."""
    digest = hashlib.sha256(f"{experiment_id}:{unit_key}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    total = sum(float(v.get("weight", 1)) for v in variants)
    edge = 0.0
    for variant in variants:
        edge += float(variant.get("weight", 1)) / total
        if point < edge:
            return variant["code"]
    return variants[-1]["code"]


@dataclass(frozen=True)
class Outcome:
    """One appointment's result for the analysis."""

    variant: str
    confirmed: bool
    # "visited", "no_show" or None while unknown.
    attended: str | None


def analyse(
    variants: list[dict[str, Any]],
    outcomes: list[Outcome],
    *,
    metric: str = "no_show",
    min_per_variant: int = 100,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """Per-variant rates with intervals, tests against control, and a verdict.

    For "no_show" lower is better; for "confirmation" higher is better.
    """
    if metric not in METRICS:
        raise ExperimentError(f"Метрика должна быть одной из: {', '.join(METRICS)}.")
    control = next(v["code"] for v in variants if v.get("control"))
    rows: dict[str, dict[str, Any]] = {}
    for variant in variants:
        code = variant["code"]
        mine = [o for o in outcomes if o.variant == code]
        known = [o for o in mine if o.attended in ("visited", "no_show")]
        no_shows = sum(1 for o in known if o.attended == "no_show")
        confirmed = sum(1 for o in mine if o.confirmed)
        if metric == "no_show":
            successes, n = no_shows, len(known)
        else:
            successes, n = confirmed, len(mine)
        low, high = wilson_interval(successes, n)
        rows[code] = {
            "code": code,
            "control": code == control,
            "n": n,
            "events": successes,
            "rate": successes / n if n else None,
            "ci95": [low, high],
            "appointments": len(mine),
            "confirmation_rate": confirmed / len(mine) if mine else None,
            "no_show_rate": no_shows / len(known) if known else None,
        }

    comparisons = len(variants) - 1
    threshold = alpha / comparisons
    enough = all(row["n"] >= min_per_variant for row in rows.values())
    best: tuple[float, str] | None = None
    base = rows[control]
    for code, row in rows.items():
        if code == control:
            continue
        z, p = two_proportion_z(row["events"], row["n"], base["events"], base["n"])
        row["z"], row["p_value"] = z, p
        better = z < 0 if metric == "no_show" else z > 0
        row["significant"] = enough and p < threshold
        if row["significant"] and better and (best is None or p < best[0]):
            best = (p, code)

    if not enough:
        verdict = "collecting"
        message = (
            f"Мало данных: нужно не меньше {min_per_variant} визитов "
            "в каждом варианте, вывода пока нет."
        )
        winner = None
    elif best is not None:
        verdict, winner = "winner", best[1]
        message = f"Вариант {winner} лучше контрольного (p = {best[0]:.4f})."
    else:
        verdict, winner = "no_difference", None
        message = "Значимой разницы с контрольным вариантом нет."
    return {
        "metric": metric,
        "alpha": alpha,
        "threshold": threshold,
        "min_per_variant": min_per_variant,
        "variants": list(rows.values()),
        "verdict": verdict,
        "winner": winner,
        "message": message,
    }
