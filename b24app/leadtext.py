"""What the client wrote: the text of a lead that the classifier reads.

Web forms put the request in COMMENTS, and some forms and integrations put
it in TITLE. Leads from Instagram, WhatsApp and Telegram arrive through an
open line with empty COMMENTS. There the client's words are the first
incoming message of the open-line chat, or of an incoming e-mail.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

OPENLINE_PROVIDER = "IMOPENLINES_SESSION"
TYPE_EMAIL = "4"
DIRECTION_INCOMING = "1"
MAX_TEXT = 4000

# Titles that the portal or a form generates rather than the client writes.
_GENERATED_TITLE = re.compile(
    r"^\s*(лид|lead|новый лид|new lead|заявка|сделка|deal|обращение|входящий звонок"
    r"|звонок|callback|обратный звонок)?\s*(№|#)?\s*\d*\s*$"
    r"|^\s*(заявка|лид|lead|обращение)\s+(с|из|from)\s+\S+.*$"
    r"|^.*(открытая линия|open ?line|instagram|whatsapp|telegram|вконтакте|vk)"
    r"\s*[-:—]\s*\S+\s*$",
    re.IGNORECASE,
)
_TAGS = re.compile(r"<[^>]+>|\[/?[a-zA-Z]+(=[^\]]*)?\]")


@dataclass(frozen=True)
class LeadText:
    text: str
    source: str  # "comments", "openline", "email", "title" or "none"


def clean(value: Any) -> str:
    """Strip HTML and BB-code markup and collapse white space."""
    if not value:
        return ""
    text = html.unescape(_TAGS.sub(" ", str(value)))
    return re.sub(r"\s+", " ", text).strip()[:MAX_TEXT]


def extract(lead: dict[str, Any], activities: list[dict[str, Any]]) -> LeadText:
    """Pick the client's own words from the lead and its incoming activities."""
    comments = clean(lead.get("COMMENTS"))
    if comments:
        return LeadText(comments, "comments")

    incoming = [a for a in activities if str(a.get("DIRECTION")) == DIRECTION_INCOMING]
    incoming.sort(key=lambda a: int(a.get("ID") or 0))
    for activity in incoming:
        text = clean(activity.get("DESCRIPTION"))
        if str(activity.get("PROVIDER_ID")) == OPENLINE_PROVIDER and text:
            return LeadText(text, "openline")
        if str(activity.get("TYPE_ID")) == TYPE_EMAIL:
            subject = clean(activity.get("SUBJECT"))
            body = " ".join(part for part in (subject, text) if part)
            if body:
                return LeadText(body, "email")
        if text:
            return LeadText(text, "activity")

    title = clean(lead.get("TITLE"))
    if title and not _GENERATED_TITLE.match(title):
        return LeadText(title, "title")
    return LeadText("", "none")


def channel(lead: dict[str, Any], source: str) -> str:
    """Return a coarse channel name for reports, from SOURCE_ID and the text source."""
    if source in ("openline", "email"):
        return source
    source_id = str(lead.get("SOURCE_ID") or "").upper()
    if "|" in source_id:
        # Open-line sources read "<line id>|<connector>", e.g. "1|TELEGRAM".
        return "openline"
    mapping = {
        "WEB": "site",
        "WEBFORM": "site",
        "CALL": "phone",
        "CALLBACK": "phone",
        "EMAIL": "email",
        "ADVERTISING": "ads",
        "RECOMMENDATION": "referral",
    }
    return mapping.get(source_id, source_id.lower() or "other")
