"""Field descriptions of CRM entities and the wire formats of their values.

Records are stored in wire form, as legacy `crm.*` methods return them: ids
and numbers as strings, flags as "Y"/"N", datetimes as ISO 8601 with the
portal offset, dates as YYYY-MM-DD, empty dates as "".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

NUMERIC_TYPES = frozenset(
    {
        "integer",
        "double",
        "user",
        "employee",
        "crm_company",
        "crm_contact",
        "crm_lead",
        "crm_deal",
        "crm_category",
        "enumeration",
        "boolean",
    }
)
DATE_TYPES = frozenset({"date", "datetime"})
MULTIFIELD_TYPES = ("PHONE", "EMAIL", "WEB", "IM", "LINK")
MULTIFIELD_VALUE_TYPES = {
    "PHONE": ("WORK", "MOBILE", "FAX", "HOME", "PAGER", "MAILING", "OTHER"),
    "EMAIL": ("WORK", "HOME", "MAILING", "OTHER"),
    "WEB": ("WORK", "HOME", "VK", "LIVEJOURNAL", "TWITTER", "OTHER"),
    "IM": (
        "TELEGRAM",
        "VK",
        "SKYPE",
        "VIBER",
        "BITRIX24",
        "OPENLINE",
        "IMOL",
        "ICQ",
        "MSN",
        "JABBER",
        "OTHER",
    ),
    "LINK": ("USER", "OTHER"),
}


@dataclass(frozen=True)
class FieldSpec:
    """One entry of a `crm.*.fields` response."""

    type: str
    title: str
    read_only: bool = False
    required: bool = False
    immutable: bool = False
    multiple: bool = False
    status_type: str | None = None

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "type": self.type,
            "isRequired": self.required,
            "isReadOnly": self.read_only,
            "isImmutable": self.immutable,
            "isMultiple": self.multiple,
            "isDynamic": False,
            "title": self.title,
        }
        if self.status_type:
            info["statusType"] = self.status_type
        return info


def _spec(type_: str, title: str, **flags: Any) -> FieldSpec:
    return FieldSpec(type=type_, title=title, **flags)


_UTM_FIELDS = {
    name: _spec("string", name.replace("_", " ").title())
    for name in ("UTM_SOURCE", "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_CONTENT", "UTM_TERM")
}

_MULTIFIELD_SPECS = {
    "PHONE": _spec("crm_multifield", "Phone", multiple=True),
    "EMAIL": _spec("crm_multifield", "E-mail", multiple=True),
    "WEB": _spec("crm_multifield", "Website", multiple=True),
    "IM": _spec("crm_multifield", "Messenger", multiple=True),
    "LINK": _spec("crm_multifield", "Link", multiple=True),
}

LEAD_FIELDS: dict[str, FieldSpec] = {
    "ID": _spec("integer", "ID", read_only=True),
    "TITLE": _spec("string", "Lead name", required=True),
    "HONORIFIC": _spec("crm_status", "Salutation", status_type="HONORIFIC"),
    "NAME": _spec("string", "First name"),
    "SECOND_NAME": _spec("string", "Second name"),
    "LAST_NAME": _spec("string", "Last name"),
    "BIRTHDATE": _spec("date", "Date of birth"),
    "COMPANY_TITLE": _spec("string", "Company name"),
    "SOURCE_ID": _spec("crm_status", "Source", status_type="SOURCE"),
    "SOURCE_DESCRIPTION": _spec("string", "Source information"),
    "STATUS_ID": _spec("crm_status", "Stage", status_type="STATUS"),
    "STATUS_DESCRIPTION": _spec("string", "Stage information"),
    "STATUS_SEMANTIC_ID": _spec("string", "Status details", read_only=True),
    "POST": _spec("string", "Position"),
    "ADDRESS": _spec("string", "Address"),
    "ADDRESS_2": _spec("string", "Address (line 2)"),
    "ADDRESS_CITY": _spec("string", "City"),
    "ADDRESS_POSTAL_CODE": _spec("string", "Zip"),
    "ADDRESS_REGION": _spec("string", "Region"),
    "ADDRESS_PROVINCE": _spec("string", "State / Province"),
    "ADDRESS_COUNTRY": _spec("string", "Country"),
    "ADDRESS_COUNTRY_CODE": _spec("string", "Country code"),
    "ADDRESS_LOC_ADDR_ID": _spec("integer", "Location address ID"),
    "CURRENCY_ID": _spec("crm_currency", "Currency"),
    "OPPORTUNITY": _spec("double", "Total"),
    "IS_MANUAL_OPPORTUNITY": _spec("char", "Manual total"),
    "OPENED": _spec("char", "Available to everyone"),
    "COMMENTS": _spec("string", "Comment"),
    "HAS_PHONE": _spec("char", "Has phone", read_only=True),
    "HAS_EMAIL": _spec("char", "Has e-mail", read_only=True),
    "HAS_IMOL": _spec("char", "Has Open Channel", read_only=True),
    "ASSIGNED_BY_ID": _spec("user", "Responsible person"),
    "CREATED_BY_ID": _spec("user", "Created by", read_only=True),
    "MODIFY_BY_ID": _spec("user", "Modified by", read_only=True),
    "MOVED_BY_ID": _spec("user", "Moved by", read_only=True),
    "DATE_CREATE": _spec("datetime", "Created", read_only=True),
    "DATE_MODIFY": _spec("datetime", "Modified", read_only=True),
    "MOVED_TIME": _spec("datetime", "Moved on", read_only=True),
    "COMPANY_ID": _spec("crm_company", "Company"),
    "CONTACT_ID": _spec("crm_contact", "Contact"),
    "CONTACT_IDS": _spec("crm_contact", "Contacts", multiple=True),
    "IS_RETURN_CUSTOMER": _spec("char", "Repeat lead", read_only=True),
    "DATE_CLOSED": _spec("datetime", "Completion date", read_only=True),
    "ORIGINATOR_ID": _spec("string", "External source"),
    "ORIGIN_ID": _spec("string", "Item ID in data source"),
    **_UTM_FIELDS,
    "LAST_ACTIVITY_TIME": _spec("datetime", "Last activity", read_only=True),
    "LAST_ACTIVITY_BY": _spec("user", "Last activity by", read_only=True),
    **_MULTIFIELD_SPECS,
}

DEAL_FIELDS: dict[str, FieldSpec] = {
    "ID": _spec("integer", "ID", read_only=True),
    "TITLE": _spec("string", "Name"),
    "TYPE_ID": _spec("crm_status", "Type", status_type="DEAL_TYPE"),
    "CATEGORY_ID": _spec("crm_category", "Pipeline", immutable=True),
    "STAGE_ID": _spec("crm_status", "Deal stage", status_type="DEAL_STAGE"),
    "STAGE_SEMANTIC_ID": _spec("string", "Stage group", read_only=True),
    "IS_NEW": _spec("char", "New deal", read_only=True),
    "IS_RECURRING": _spec("char", "Recurring deal", read_only=True),
    "PROBABILITY": _spec("integer", "Probability"),
    "CURRENCY_ID": _spec("crm_currency", "Currency"),
    "OPPORTUNITY": _spec("double", "Income"),
    "IS_MANUAL_OPPORTUNITY": _spec("char", "Manual income"),
    "TAX_VALUE": _spec("double", "Tax rate"),
    "COMPANY_ID": _spec("crm_company", "Company"),
    "CONTACT_ID": _spec("crm_contact", "Contact"),
    "CONTACT_IDS": _spec("crm_contact", "Contacts", multiple=True),
    "BEGINDATE": _spec("date", "Start date"),
    "CLOSEDATE": _spec("date", "End date"),
    "OPENED": _spec("char", "Available to everyone"),
    "CLOSED": _spec("char", "Closed"),
    "COMMENTS": _spec("string", "Comment"),
    "ASSIGNED_BY_ID": _spec("user", "Responsible person"),
    "CREATED_BY_ID": _spec("user", "Created by", read_only=True),
    "MODIFY_BY_ID": _spec("user", "Modified by", read_only=True),
    "MOVED_BY_ID": _spec("user", "Moved by", read_only=True),
    "DATE_CREATE": _spec("datetime", "Created on", read_only=True),
    "DATE_MODIFY": _spec("datetime", "Modified on", read_only=True),
    "MOVED_TIME": _spec("datetime", "Moved on", read_only=True),
    "SOURCE_ID": _spec("crm_status", "Source", status_type="SOURCE"),
    "SOURCE_DESCRIPTION": _spec("string", "Source information"),
    "LEAD_ID": _spec("crm_lead", "Lead", read_only=True),
    "ADDITIONAL_INFO": _spec("string", "Additional information"),
    "ORIGINATOR_ID": _spec("string", "External source"),
    "ORIGIN_ID": _spec("string", "Item ID in data source"),
    **_UTM_FIELDS,
    "LAST_ACTIVITY_TIME": _spec("datetime", "Last activity", read_only=True),
    "LAST_ACTIVITY_BY": _spec("user", "Last activity by", read_only=True),
}

ACTIVITY_FIELDS: dict[str, FieldSpec] = {
    "ID": _spec("integer", "ID", read_only=True),
    "OWNER_ID": _spec("integer", "Owner ID", required=True, immutable=True),
    "OWNER_TYPE_ID": _spec("integer", "Owner type", required=True, immutable=True),
    "TYPE_ID": _spec("crm_enum_activitytype", "Type", required=True, immutable=True),
    "PROVIDER_ID": _spec("string", "Provider ID", immutable=True),
    "PROVIDER_TYPE_ID": _spec("string", "Provider type ID", immutable=True),
    "PROVIDER_GROUP_ID": _spec("string", "Provider group ID", read_only=True),
    "ASSOCIATED_ENTITY_ID": _spec("integer", "Associated entity", read_only=True),
    "SUBJECT": _spec("string", "Subject", required=True),
    "CREATED": _spec("datetime", "Created on", read_only=True),
    "LAST_UPDATED": _spec("datetime", "Last updated", read_only=True),
    "START_TIME": _spec("datetime", "Start time"),
    "END_TIME": _spec("datetime", "End time"),
    "DEADLINE": _spec("datetime", "Deadline", read_only=True),
    "COMPLETED": _spec("char", "Completed"),
    "STATUS": _spec("crm_enum_activitystatus", "Status", read_only=True),
    "RESPONSIBLE_ID": _spec("user", "Responsible person", required=True),
    "PRIORITY": _spec("crm_enum_activitypriority", "Priority"),
    "NOTIFY_TYPE": _spec("crm_enum_activitynotifytype", "Notification type"),
    "NOTIFY_VALUE": _spec("integer", "Notification value"),
    "DESCRIPTION": _spec("string", "Description"),
    "DESCRIPTION_TYPE": _spec("crm_enum_contenttype", "Description type"),
    "DIRECTION": _spec("crm_enum_activitydirection", "Direction", immutable=True),
    "LOCATION": _spec("string", "Location"),
    "SETTINGS": _spec("object", "Settings"),
    "ORIGINATOR_ID": _spec("string", "Data source"),
    "ORIGIN_ID": _spec("string", "Item ID in data source"),
    "AUTHOR_ID": _spec("user", "Created by"),
    "EDITOR_ID": _spec("user", "Modified by", read_only=True),
    "PROVIDER_PARAMS": _spec("object", "Provider parameters"),
    "PROVIDER_DATA": _spec("string", "Provider data"),
    "IS_INCOMING_CHANNEL": _spec("char", "Incoming channel", read_only=True),
    "BINDINGS": _spec(
        "crm_activity_binding", "Bindings", read_only=True, multiple=True
    ),
    "COMMUNICATIONS": _spec(
        "crm_activity_communication", "Communications", required=True, multiple=True
    ),
    "FILES": _spec("diskfile", "Files", multiple=True),
}

# Activity keys returned by `crm.activity.list` only when selected by name.
ACTIVITY_SELECT_ONLY = ("COMMUNICATIONS", "FILES")


# ---------------------------------------------------------------- value formats


def format_datetime(moment: datetime) -> str:
    """Format as ISO 8601 with offset and no fraction: 2026-01-05T15:00:00+03:00."""
    return moment.replace(microsecond=0).isoformat()


_RU_DATETIME = re.compile(
    r"^(\d{2})\.(\d{2})\.(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$"
)


def parse_datetime(value: Any, tz: tzinfo) -> datetime | None:
    """Read ISO 8601 or the portal's `dd.mm.yyyy hh:mm:ss`; naive values are local."""
    if value is None or value == "" or value is False:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        match = _RU_DATETIME.match(text)
        if match:
            day, month, year, hour, minute, second = match.groups()
            moment = datetime(
                int(year),
                int(month),
                int(day),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
            )
        else:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(tz)


def to_flag(value: Any) -> str:
    """Convert booleans and 1/0 to the CRM "Y"/"N"."""
    if isinstance(value, str):
        return "Y" if value.strip().upper() in ("Y", "1", "TRUE") else "N"
    return "Y" if value else "N"


def to_money(value: Any) -> str:
    """Format a money amount with two decimals, the way legacy methods print it."""
    try:
        return f"{Decimal(str(value or 0)).quantize(Decimal('0.01'))}"
    except InvalidOperation:
        return "0.00"


def to_id_string(value: Any) -> str | None:
    """Convert an id value to its string form; empty or invalid becomes None."""
    if value is None or value == "" or value is False:
        return None
    try:
        return str(int(str(value).strip()))
    except ValueError:
        return None


def to_wire(spec_type: str, value: Any, tz: tzinfo) -> Any:
    """Convert an input value of a standard field to its stored wire form."""
    if spec_type in ("integer", "user", "crm_company", "crm_contact", "crm_category"):
        return to_id_string(value)
    if spec_type == "double":
        return to_money(value)
    if spec_type == "char":
        return to_flag(value)
    if spec_type == "datetime":
        moment = parse_datetime(value, tz)
        return format_datetime(moment) if moment else ""
    if spec_type == "date":
        moment = parse_datetime(value, tz)
        return moment.date().isoformat() if moment else ""
    if value is None:
        return None
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)
