"""The finite demo: leads, escalations, reminders, replies, marks and KPIs."""

from __future__ import annotations

import pytest

from b24app.demo import DemoOptions, run_demo
from tests.conftest import free_port


@pytest.mark.slow
def test_finite_demo_shows_the_whole_product():
    summary = run_demo(DemoOptions(leads=12, exit_after=True, port=free_port()))

    assert summary["leads_seen"] == 12
    assert summary["tagged"] == 12
    assert summary["escalated"] >= 1
    assert summary["escalation_tasks_on_portal"] == summary["escalated"]
    # Six confirmation requests, then at least one reminder shortly before.
    assert summary["reminders_sent"] >= 7
    assert summary["confirmed"] >= 1
    assert summary["cancelled"] >= 1
    assert summary["reschedule_requests"] >= 1
    assert summary["visits_marked"] >= 20
    assert [v["code"] for v in summary["ab_test"]["variants"]] == ["A", "B"]
    assert all(v["visits_known"] > 0 for v in summary["ab_test"]["variants"])
    assert 0 < summary["no_show_rate"] < 0.5
    assert summary["revenue_30d"] > 0
    assert summary["cac"] > 0
    assert summary["ltv"] > 0
    assert summary["forecast_available"] is True
