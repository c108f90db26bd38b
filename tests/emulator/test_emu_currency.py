"""CRM currencies: `crm.currency.base.get`, `crm.currency.list`, the control route."""

from __future__ import annotations

import pytest
from emu_helpers import RestClient, loopback_session

DOCUMENTED_FIELDS = {
    "CURRENCY",
    "AMOUNT_CNT",
    "AMOUNT",
    "SORT",
    "BASE",
    "FULL_NAME",
    "LID",
    "FORMAT_STRING",
    "DEC_POINT",
    "THOUSANDS_SEP",
    "DECIMALS",
    "DATE_UPDATE",
}
MANAGER = 4


def _codes(rows: list[dict]) -> list[str]:
    return [row["CURRENCY"] for row in rows]


def _by_code(rows: list[dict]) -> dict[str, dict]:
    return {row["CURRENCY"]: row for row in rows}


@pytest.fixture
def control(emulator):
    session = loopback_session(emulator.ca_path)

    def call(method: str, **kwargs):
        return session.request(
            method, f"{emulator.base_url}/_emulator/currencies", timeout=10, **kwargs
        )

    return call


# Seeded state


def test_base_get_returns_rub(client: RestClient):
    response = client.call("crm.currency.base.get")

    assert response.status_code == 200
    assert response.json()["result"] == "RUB"


def test_list_rows_have_documented_fields(client: RestClient):
    body = client.call("crm.currency.list").json()

    assert _codes(body["result"]) == ["RUB", "USD", "EUR"]
    assert body["total"] == 0
    assert "next" not in body
    for row in body["result"]:
        assert set(row) == DOCUMENTED_FIELDS
        for name, value in row.items():
            if name == "THOUSANDS_SEP" and value is None:
                continue
            assert isinstance(value, str), f"{row['CURRENCY']}.{name} is {value!r}"


def test_list_base_row(client: RestClient):
    rows = _by_code(client.result("crm.currency.list"))

    assert rows["RUB"]["BASE"] == "Y"
    assert rows["RUB"]["AMOUNT"] == "1.0000"
    assert rows["RUB"]["AMOUNT_CNT"] == "1"
    assert rows["USD"]["BASE"] == "N"
    assert rows["EUR"]["BASE"] == "N"


def test_list_rates_are_plausible(client: RestClient):
    rows = _by_code(client.result("crm.currency.list"))

    assert 50 < float(rows["USD"]["AMOUNT"]) < 150
    assert 50 < float(rows["EUR"]["AMOUNT"]) < 150
    assert rows["USD"]["AMOUNT_CNT"] == "1"
    assert rows["EUR"]["AMOUNT"].count(".") == 1
    assert len(rows["EUR"]["AMOUNT"].split(".")[1]) == 4


def test_list_row_language_and_format(client: RestClient, emulator):
    rows = _by_code(client.result("crm.currency.list"))

    assert rows["RUB"]["LID"] == emulator.config.language
    assert rows["RUB"]["FULL_NAME"] == "Российский рубль"
    assert "#" in rows["USD"]["FORMAT_STRING"]
    assert rows["EUR"]["DECIMALS"] == "2"
    assert rows["EUR"]["DEC_POINT"] == "."
    assert rows["EUR"]["DATE_UPDATE"].startswith(emulator.portal.now_iso()[:10])


def test_list_names_in_english(make_emulator):
    handle = make_emulator(language="en")
    rows = _by_code(RestClient(handle).result("crm.currency.list"))

    assert rows["USD"]["FULL_NAME"] == "US Dollar"
    assert rows["USD"]["LID"] == "en"


# Order


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ({}, ["RUB", "USD", "EUR"]),
        ({"sort": "asc"}, ["RUB", "USD", "EUR"]),
        ({"SORT": "DESC"}, ["EUR", "USD", "RUB"]),
        ({"currency": "asc"}, ["EUR", "RUB", "USD"]),
        ({"currency": "desc"}, ["USD", "RUB", "EUR"]),
        # "name" sorts by FULL_NAME: Доллар США, Евро, Российский рубль.
        ({"name": "asc"}, ["USD", "EUR", "RUB"]),
        ({"FULL_NAME": "desc"}, ["RUB", "EUR", "USD"]),
        ({"base": "desc", "currency": "desc"}, ["RUB", "USD", "EUR"]),
        ({"sort": "sideways"}, ["RUB", "USD", "EUR"]),
    ],
)
def test_list_order(client: RestClient, order, expected):
    rows = client.result("crm.currency.list", {"order": order})

    assert _codes(rows) == expected


def test_list_order_amount_is_numeric(client: RestClient, emulator):
    # As text "8000.0000" sorts before "92.5000"; as a number it is the largest.
    emulator.portal.set_currencies(rates={"XAU": "8000"})

    rows = client.result("crm.currency.list", {"order": {"AMOUNT": "desc"}})

    assert _codes(rows) == ["XAU", "EUR", "USD", "RUB"]


def test_list_order_in_form_body(client: RestClient):
    response = client.call("crm.currency.list", {"order[currency]": "desc"}, form=True)

    assert response.status_code == 200
    assert _codes(response.json()["result"]) == ["USD", "RUB", "EUR"]


# Access


def test_methods_need_crm_scope(make_emulator):
    handle = make_emulator(scopes=("user",))
    client = RestClient(handle)

    for method in ("crm.currency.base.get", "crm.currency.list"):
        response = client.call(method)
        assert response.status_code == 403, method
        assert response.json()["error"] == "insufficient_scope", method


def test_base_get_open_to_any_user(client: RestClient, emulator):
    token = emulator.portal.issue_tokens(MANAGER)["access_token"]

    response = client.call("crm.currency.base.get", token=token)

    assert response.status_code == 200
    assert response.json()["result"] == "RUB"


def test_list_denied_without_crm_settings(client: RestClient, emulator):
    token = emulator.portal.issue_tokens(MANAGER)["access_token"]

    response = client.call("crm.currency.list", token=token)

    assert response.status_code == 400
    assert response.json()["error"] == ""
    assert response.json()["error_description"] == "Access denied."


def test_list_through_admin_webhook(emulator):
    base = emulator.portal.add_webhook(1)
    session = loopback_session(emulator.ca_path)

    response = session.post(f"{base}crm.currency.list", json={}, timeout=10)

    assert response.status_code == 200
    assert _codes(response.json()["result"]) == ["RUB", "USD", "EUR"]


def test_methods_in_batch(client: RestClient):
    result = client.result(
        "batch",
        {
            "cmd": {
                "base": "crm.currency.base.get",
                "list": "crm.currency.list?order[sort]=desc",
            }
        },
    )

    assert result["result"]["base"] == "RUB"
    assert _codes(result["result"]["list"]) == ["EUR", "USD", "RUB"]


# Control route and portal helper


def test_control_switches_base(control, client: RestClient):
    response = control("POST", json={"base": "USD"})

    assert response.status_code == 200
    assert response.json()["base"] == "USD"
    assert client.result("crm.currency.base.get") == "USD"
    rows = _by_code(client.result("crm.currency.list"))
    assert rows["USD"]["BASE"] == "Y"
    assert rows["USD"]["AMOUNT"] == "1.0000"
    assert rows["RUB"]["BASE"] == "N"
    # 100 RUB = 100 / 92.5 USD and 1 EUR = 99.8 / 92.5 USD, at 4 decimal places.
    assert rows["RUB"]["AMOUNT"] == "1.0811"
    assert rows["RUB"]["AMOUNT_CNT"] == "100"
    assert rows["EUR"]["AMOUNT"] == "1.0789"
    assert rows["EUR"]["AMOUNT_CNT"] == "1"


def test_control_sets_rates_in_new_base(control, client: RestClient):
    response = control(
        "POST",
        json={
            "base": "EUR",
            "rates": {"usd": 0.92, "RUB": {"amount": "1.05", "amount_cnt": 100}},
        },
    )

    assert response.status_code == 200
    rows = _by_code(client.result("crm.currency.list"))
    assert rows["EUR"]["BASE"] == "Y"
    assert rows["USD"]["AMOUNT"] == "0.9200"
    assert rows["USD"]["AMOUNT_CNT"] == "1"
    assert rows["RUB"]["AMOUNT"] == "1.0500"
    assert rows["RUB"]["AMOUNT_CNT"] == "100"


def test_control_adds_currency(control, client: RestClient):
    response = control(
        "POST", json={"rates": {"KZT": {"amount": 18, "amount_cnt": 100}}}
    )

    assert response.status_code == 200
    rows = client.result("crm.currency.list")
    assert _codes(rows) == ["RUB", "USD", "EUR", "KZT"]
    kzt = rows[-1]
    assert kzt["AMOUNT"] == "18.0000"
    assert kzt["AMOUNT_CNT"] == "100"
    assert kzt["BASE"] == "N"
    assert kzt["SORT"] == "400"
    assert set(kzt) == DOCUMENTED_FIELDS


def test_control_get_lists_rows(control):
    body = control("GET").json()

    assert body["base"] == "RUB"
    assert _codes(body["currencies"]) == ["RUB", "USD", "EUR"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, "Send base, rates or both"),
        ({"base": "USD", "currency": "EUR"}, 400, "Unknown keys"),
        ({"base": "US"}, 400, "Invalid currency code"),
        ({"base": "KZT"}, 404, "not on the portal"),
        ({"rates": ["USD"]}, 400, "rates must be an object"),
        ({"rates": {"USD": 0}}, 400, "number above 0"),
        ({"rates": {"USD": -3}}, 400, "number above 0"),
        ({"rates": {"USD": "abc"}}, 400, "is not a number"),
        ({"rates": {"USD": "NaN"}}, 400, "number above 0"),
        ({"rates": {"USD": True}}, 400, "Invalid rate"),
        ({"rates": {"USD": None}}, 400, "Invalid rate"),
        ({"rates": {"USD": "0.00001"}}, 400, "rounds to 0"),
        ({"rates": {"USD": "1e20"}}, 400, "14 digits"),
        ({"rates": {"USD": {"amount_cnt": 1}}}, 400, "Missing amount"),
        ({"rates": {"USD": {"amount": 1, "amount_cnt": 0}}}, 400, "amount_cnt"),
        ({"rates": {"USD": {"amount": 1, "amount_cnt": 1.5}}}, 400, "amount_cnt"),
        ({"rates": {"USD": {"amount": 1, "amount_cnt": 10**10}}}, 400, "from 1 to"),
        ({"rates": {"USD": {"amount": 1, "units": 1}}}, 400, "Unknown keys"),
        ({"rates": {"RUB": 2}}, 400, "must keep amount 1"),
        ({"base": "USD", "rates": {"USD": 90}}, 400, "must keep amount 1"),
        ({"rates": {"EUR": 98, "U$D": 1}}, 400, "Invalid currency code"),
    ],
)
def test_control_rejects_invalid_input(control, body, status, message):
    before = control("GET").json()

    response = control("POST", json=body)

    assert response.status_code == status
    assert message in response.json()["error_description"]
    assert control("GET").json() == before


def test_switch_raises_amount_cnt_of_small_rates(emulator):
    portal = emulator.portal
    portal.set_currencies(rates={"BTC": "9000000"})

    state = portal.set_currencies("BTC")

    rows = _by_code(state["currencies"])
    assert state["base"] == "BTC"
    assert rows["BTC"]["AMOUNT"] == "1.0000"
    # 10 000 000 RUB = 10 000 000 / 9 000 000 BTC.
    assert rows["RUB"]["AMOUNT_CNT"] == "10000000"
    assert rows["RUB"]["AMOUNT"] == "1.1111"
    assert rows["USD"]["AMOUNT_CNT"] == "100000"
    assert rows["USD"]["AMOUNT"] == "1.0278"


def test_switch_rejects_rate_rounding_to_zero(emulator):
    portal = emulator.portal
    portal.set_currencies(rates={"XXX": "90000000000000"})
    before = portal.currencies.snapshot()

    with pytest.raises(ValueError, match="RUB rounds to 0"):
        portal.set_currencies("XXX")

    assert portal.currencies.snapshot() == before


def test_switch_with_explicit_small_rate(emulator):
    portal = emulator.portal
    portal.set_currencies(rates={"XXX": "90000000000000"})

    state = portal.set_currencies(
        "XXX",
        {
            "RUB": {"amount": "0.0111", "amount_cnt": 10**9},
            "USD": {"amount": "1.0278", "amount_cnt": 10**9},
            "EUR": {"amount": "1.1089", "amount_cnt": 10**9},
        },
    )

    rows = _by_code(state["currencies"])
    assert state["base"] == "XXX"
    assert rows["RUB"]["AMOUNT"] == "0.0111"
    assert rows["RUB"]["AMOUNT_CNT"] == "1000000000"


def test_switch_back_keeps_rates_close(emulator):
    portal = emulator.portal

    portal.set_currencies("EUR")
    state = portal.set_currencies("RUB")

    rows = _by_code(state["currencies"])
    assert rows["RUB"]["AMOUNT"] == "1.0000"
    assert rows["USD"]["AMOUNT_CNT"] == "1"
    assert float(rows["USD"]["AMOUNT"]) == pytest.approx(92.5, rel=1e-4)
    assert float(rows["EUR"]["AMOUNT"]) == pytest.approx(99.8, rel=1e-4)
