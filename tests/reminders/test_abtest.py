"""A/B statistics on simulated appointments with fixed seeds."""

from __future__ import annotations

import random

import pytest

from b24app.reminders import abtest

VARIANTS = [
    {"code": "A", "control": True, "weight": 1},
    {"code": "B", "control": False, "weight": 1},
]


def _simulate(rates: dict[str, float], n: int, seed: int) -> list[abtest.Outcome]:
    """Appointments assigned by the real hash, no-shows drawn per variant."""
    rng = random.Random(seed)
    outcomes = []
    for index in range(n):
        variant = abtest.assign(7, f"deal:{seed}-{index}", VARIANTS)
        no_show = rng.random() < rates[variant]
        outcomes.append(
            abtest.Outcome(
                variant=variant,
                confirmed=not no_show and rng.random() < 0.8,
                attended="no_show" if no_show else "visited",
            )
        )
    return outcomes


def test_wilson_interval_known_value():
    low, high = abtest.wilson_interval(10, 100)
    assert (round(low, 4), round(high, 4)) == (0.0552, 0.1744)


def test_z_test_known_value():
    z, p = abtest.two_proportion_z(30, 200, 15, 200)
    assert (round(z, 3), round(p, 4)) == (2.374, 0.0176)


def test_assignment_is_stable():
    first = [abtest.assign(3, f"deal:{i}", VARIANTS) for i in range(50)]
    second = [abtest.assign(3, f"deal:{i}", VARIANTS) for i in range(50)]
    assert first == second


def test_assignment_is_balanced():
    codes = [abtest.assign(3, f"deal:{i}", VARIANTS) for i in range(4000)]
    assert abs(codes.count("A") / 4000 - 0.5) < 0.03


def test_real_difference_is_detected():
    outcomes = _simulate({"A": 0.15, "B": 0.07}, 3000, seed=11)
    report = abtest.analyse(VARIANTS, outcomes, min_per_variant=200)
    assert report["winner"] == "B"


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_no_difference_is_not_declared(seed):
    outcomes = _simulate({"A": 0.12, "B": 0.12}, 2000, seed=seed)
    report = abtest.analyse(VARIANTS, outcomes, min_per_variant=200)
    assert report["verdict"] == "no_difference"


def test_small_sample_gives_no_verdict():
    outcomes = _simulate({"A": 0.30, "B": 0.02}, 100, seed=9)
    report = abtest.analyse(VARIANTS, outcomes, min_per_variant=100)
    assert report["verdict"] == "collecting"


def test_worse_variant_is_not_a_winner():
    outcomes = _simulate({"A": 0.07, "B": 0.15}, 3000, seed=12)
    report = abtest.analyse(VARIANTS, outcomes, min_per_variant=200)
    assert report["winner"] is None


def test_confirmation_metric_higher_is_better():
    rng = random.Random(5)
    outcomes = [
        abtest.Outcome(
            variant=v,
            confirmed=rng.random() < (0.5 if v == "A" else 0.65),
            attended=None,
        )
        for v in (abtest.assign(1, f"b:{i}", VARIANTS) for i in range(2000))
    ]
    report = abtest.analyse(
        VARIANTS, outcomes, metric="confirmation", min_per_variant=200
    )
    assert report["winner"] == "B"


def test_variants_need_one_control():
    with pytest.raises(abtest.ExperimentError):
        abtest.validate_variants([{"code": "A"}, {"code": "B"}])
