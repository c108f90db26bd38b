"""Calls to Bitrix24 portals: tokens, rate limits and the error policy."""

from b24app.bitrix.client import PortalClient
from b24app.bitrix.errors import (
    BitrixCallError,
    MethodDeferred,
    PortalInactive,
    RateLimited,
)

__all__ = [
    "BitrixCallError",
    "MethodDeferred",
    "PortalClient",
    "PortalInactive",
    "RateLimited",
]
