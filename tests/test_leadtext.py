"""Channel names the reports group leads and deals by."""

from __future__ import annotations

import pytest

from b24app import leadtext


@pytest.mark.parametrize(
    ("source_id", "text_source", "expected"),
    [
        ("WEB", "", "site"),
        ("CALL", "", "phone"),
        ("ADVERTISING", "", "ads"),
        ("1|OPENLINE", "", "openline"),
        ("3|TELEGRAMBOT", "", "openline"),
        ("", "openline", "openline"),
        ("PARTNER", "", "partner"),
        ("", "", "other"),
    ],
)
def test_channel(source_id, text_source, expected):
    assert leadtext.channel({"SOURCE_ID": source_id}, text_source) == expected
