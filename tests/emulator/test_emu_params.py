"""PHP-style parameter parsing and `http_build_query` output."""

from urllib.parse import parse_qsl

from b24app.emulator.params import (
    flatten_php,
    http_build_query,
    parse_php_query,
    to_php_json,
)


def test_parse_nested_brackets():
    parsed = parse_php_query("fields[TITLE]=A&fields[PHONE][0][VALUE]=%2B7")
    assert parsed == {"fields": {"TITLE": "A", "PHONE": {0: {"VALUE": "+7"}}}}


def test_parse_append_brackets_number_items():
    parsed = parse_php_query("select[]=ID&select[]=TITLE")
    assert parsed["select"] == {0: "ID", 1: "TITLE"}


def test_parse_operator_keys_kept():
    parsed = parse_php_query("filter[%3E%3DID]=5&filter[!STATUS_ID]=JUNK")
    assert parsed["filter"] == {">=ID": "5", "!STATUS_ID": "JUNK"}


def test_parse_top_level_dot_becomes_underscore():
    parsed = parse_php_query("a.b=1&c[d.e]=2")
    assert parsed == {"a_b": "1", "c": {"d.e": "2"}}


def test_parse_last_value_wins():
    assert parse_php_query("id=1&id=2") == {"id": "2"}


def test_build_query_strings_only_and_nulls_dropped():
    pairs = flatten_php(
        {"data": {"FIELDS": {"ID": 7, "X": None}}, "ok": True, "no": False}
    )
    assert pairs == [("data[FIELDS][ID]", "7"), ("ok", "1"), ("no", "0")]


def test_build_query_encodes_brackets():
    body = http_build_query({"auth": {"domain": "127.0.0.1:5000"}, "ts": 1})
    assert body == "auth%5Bdomain%5D=127.0.0.1%3A5000&ts=1"


def test_build_query_round_trip():
    body = http_build_query({"data": {"LIST": ["a", "b"]}})
    assert dict(parse_qsl(body)) == {"data[LIST][0]": "a", "data[LIST][1]": "b"}


def test_php_json_empty_map_is_list():
    assert to_php_json({}) == []


def test_php_json_sequential_keys_are_list():
    assert to_php_json({0: "a", 1: "b"}) == ["a", "b"]


def test_php_json_other_keys_are_object():
    assert to_php_json({1: "a", "x": "b"}) == {"1": "a", "x": "b"}
