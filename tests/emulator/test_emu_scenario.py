"""Lead generator and the scenario runner."""

import random
from collections import Counter

import pytest

from b24app.emulator.scenario import (
    AnswerPolicy,
    ScenarioRunner,
    next_lead,
    next_lead_with_intent,
)


def test_next_lead_sequence_deterministic():
    rng_a, rng_b = random.Random(11), random.Random(11)
    assert [next_lead(rng_a) for _ in range(30)] == [
        next_lead(rng_b) for _ in range(30)
    ]


def test_next_lead_covers_channels_and_intents():
    rng = random.Random(3)
    drawn = [next_lead_with_intent(rng) for _ in range(300)]
    kinds = Counter(kind for _fields, kind, _message, _intent in drawn)
    intents = Counter(intent for _fields, _kind, _message, intent in drawn)
    assert set(kinds) == {"form", "title", "openline", "email"}
    assert {"spam", "urgent", "booking", "price"} <= set(intents)


def test_next_lead_messages_not_empty():
    rng = random.Random(5)
    assert all(
        message.strip() for _f, _k, message in (next_lead(rng) for _ in range(200))
    )


def test_email_leads_have_subject_and_address():
    rng = random.Random(9)
    emails = [
        lead for lead in (next_lead(rng) for _ in range(200)) if lead[1] == "email"
    ]
    fields = emails[0][0]
    assert fields["SUBJECT"]
    assert fields["EMAIL"][0]["VALUE"].endswith("@mail.example")


def test_answer_policy_rejects_shares_over_one():
    with pytest.raises(ValueError):
        AnswerPolicy(on_time_share=0.8, late_share=0.5)


def test_runner_creates_and_answers(emulator):
    portal = emulator.portal
    runner = ScenarioRunner(
        portal,
        rate_per_minute=1200,
        answer_policy=AnswerPolicy(on_time_share=0.5, late_share=0.3, sla_seconds=0.2),
        seed=1,
        max_leads=12,
    ).start()
    try:
        assert portal.wait_for(lambda: runner.finished, timeout=20)
    finally:
        runner.stop()

    answered = [
        lead_id
        for lead_id, outcome in runner.outcomes.items()
        if outcome in ("on_time", "late")
    ]
    outgoing = {
        int(activity["OWNER_ID"])
        for activity in portal.activities.values()
        if activity["DIRECTION"] == "2"
    }
    assert len(runner.created) == 12
    assert set(answered) <= outgoing
    assert "never" in runner.outcomes.values()


def test_runner_outcomes_deterministic(make_emulator):
    plans = []
    for _ in range(2):
        handle = make_emulator()
        runner = ScenarioRunner(
            handle.portal,
            rate_per_minute=6000,
            answer_policy=AnswerPolicy(sla_seconds=0.05),
            seed=21,
            max_leads=10,
        ).start()
        handle.portal.wait_for(lambda runner=runner: runner.finished, timeout=20)
        runner.stop()
        plans.append([runner.outcomes[lead_id] for lead_id in runner.created])
    assert plans[0] == plans[1]
