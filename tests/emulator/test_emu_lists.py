"""List methods: 50-row pages, `start=-1`, filter prefixes, order, select."""

import pytest
from emu_helpers import RestClient


@pytest.fixture
def leads(emulator, client: RestClient) -> list[int]:
    """120 leads made through the portal helpers; every tenth is junk."""
    portal = emulator.portal
    ids = []
    for number in range(120):
        lead_id = portal.create_lead(
            {
                "TITLE": f"Заявка {number}",
                "PHONE": [{"VALUE": f"+7 900 000-{number:04d}", "VALUE_TYPE": "WORK"}],
                "OPPORTUNITY": number * 100,
            },
            kind="title" if number % 2 else "form",
            message=f"Заявка {number}",
        )
        if number % 10 == 0:
            portal.change_lead_status(lead_id, "JUNK")
        ids.append(lead_id)
    return ids


def test_list_first_page(client: RestClient, leads):
    body = client.call("crm.lead.list", {"order": {"ID": "ASC"}}).json()
    assert len(body["result"]) == 50
    assert body["next"] == 50
    assert body["total"] == 120


def test_list_last_page_has_no_next(client: RestClient, leads):
    body = client.call("crm.lead.list", {"start": 100}).json()
    assert len(body["result"]) == 20
    assert "next" not in body
    assert body["total"] == 120


def test_list_fast_mode(client: RestClient, leads):
    body = client.call("crm.lead.list", {"start": -1}).json()
    assert len(body["result"]) == 50
    assert body["total"] == 0
    assert "next" not in body


def test_list_fast_mode_paging_by_id(client: RestClient, leads):
    seen: list[str] = []
    last_id = 0
    for _ in range(5):
        page = client.result(
            "crm.lead.list",
            {"order": {"ID": "ASC"}, "filter": {">ID": last_id}, "start": -1},
        )
        seen.extend(row["ID"] for row in page)
        if len(page) < 50:
            break
        last_id = int(page[-1]["ID"])
    assert seen == [str(lead_id) for lead_id in leads]


def test_filter_in_list(client: RestClient, leads):
    rows = client.result("crm.lead.list", {"filter": {"@ID": leads[:3]}})
    assert [row["ID"] for row in rows] == [str(lead_id) for lead_id in leads[:3]]


def test_filter_not_equal(client: RestClient, leads):
    body = client.call("crm.lead.list", {"filter": {"!STATUS_ID": "JUNK"}}).json()
    assert body["total"] == 108


def test_filter_like(client: RestClient, leads):
    body = client.call("crm.lead.list", {"filter": {"%TITLE": "заявка 11"}}).json()
    assert body["total"] == 11


def test_filter_numeric_range(client: RestClient, leads):
    body = client.call(
        "crm.lead.list", {"filter": {">=OPPORTUNITY": 11000, "<OPPORTUNITY": 11500}}
    ).json()
    assert body["total"] == 5


def test_filter_dates(client: RestClient, leads):
    body = client.call(
        "crm.lead.list", {"filter": {">=DATE_CREATE": "2000-01-01T00:00:00+03:00"}}
    ).json()
    assert body["total"] == 120


def test_filter_phone_by_digits(client: RestClient, leads):
    rows = client.result("crm.lead.list", {"filter": {"PHONE": "+79000000042"}})
    assert [row["ID"] for row in rows] == [str(leads[42])]


def test_order_descending(client: RestClient, leads):
    rows = client.result("crm.lead.list", {"order": {"OPPORTUNITY": "DESC"}})
    assert rows[0]["ID"] == str(leads[-1])


def test_select_leaves_out_multifields_by_default(client: RestClient, leads):
    row = client.result("crm.lead.list", {"filter": {"ID": leads[0]}})[0]
    assert "PHONE" not in row
    assert "TITLE" in row


def test_select_named_multifield(client: RestClient, leads):
    row = client.result(
        "crm.lead.list", {"filter": {"ID": leads[0]}, "select": ["ID", "PHONE"]}
    )[0]
    assert set(row) == {"ID", "PHONE"}
    assert row["PHONE"][0]["VALUE"] == "+7 900 000-0000"


def test_select_user_fields(client: RestClient, leads):
    client.result(
        "crm.lead.userfield.add",
        {"fields": {"FIELD_NAME": "INTENT", "USER_TYPE_ID": "string"}},
    )
    client.result("crm.lead.update", {"id": leads[1], "fields": {"UF_CRM_INTENT": "x"}})
    default_row = client.result("crm.lead.list", {"filter": {"ID": leads[1]}})[0]
    uf_row = client.result(
        "crm.lead.list", {"filter": {"ID": leads[1]}, "select": ["UF_*"]}
    )[0]
    assert "UF_CRM_INTENT" not in default_row
    assert uf_row == {"ID": str(leads[1]), "UF_CRM_INTENT": "x"}


def test_filter_by_user_field(client: RestClient, leads):
    client.result(
        "crm.lead.userfield.add",
        {"fields": {"FIELD_NAME": "INTENT", "USER_TYPE_ID": "string"}},
    )
    client.result("crm.lead.update", {"id": leads[2], "fields": {"UF_CRM_INTENT": "x"}})
    rows = client.result("crm.lead.list", {"filter": {"UF_CRM_INTENT": "x"}})
    assert [row["ID"] for row in rows] == [str(leads[2])]


def test_form_encoded_list_params(client: RestClient, leads):
    body = client.call(
        "crm.lead.list",
        {"filter[>ID]": str(leads[-3]), "select[]": "ID", "start": "0"},
        form=True,
    ).json()
    assert body["result"] == [{"ID": str(leads[-2])}, {"ID": str(leads[-1])}]
