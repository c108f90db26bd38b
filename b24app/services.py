"""The app's long-lived services, built once per process from the config.

The web app, the worker and the CLI each build one ``Services``; nothing here
starts threads or opens connections at import time.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from b24app.bitrix.client import PortalClient
from b24app.bitrix.limiter import PortalRateLimiter
from b24app.bitrix.oauth import OAuthClient
from b24app.bitrix.tokens import TokenStore
from b24app.crypto import SecretBox
from b24app.db import Database
from b24app.models import Portal

logger = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).resolve().parent.parent / "manifest.json"


@cache
def load_manifest() -> dict[str, Any]:
    """Read manifest.json: the app's scopes, handler paths, placements and events."""
    return json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))


@dataclass
class Services:
    config: dict[str, Any]
    db: Database = field(init=False)

    def __post_init__(self) -> None:
        self.db = Database(self.config["DATABASE_URL"])
        if self.config.get("CA_BUNDLE"):
            # b24pysdk builds a new requests call for every request and offers
            # no verify option, so the CA bundle for the portals' TLS is
            # handed to requests through its standard environment variable.
            os.environ["REQUESTS_CA_BUNDLE"] = self.config["CA_BUNDLE"]

    @cached_property
    def box(self) -> SecretBox:
        return SecretBox(self.config["SECRET_KEY"])

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return load_manifest()

    @cached_property
    def timeout(self) -> tuple[float, float]:
        return (self.config["REST_CONNECT_TIMEOUT"], self.config["REST_READ_TIMEOUT"])

    @cached_property
    def oauth(self) -> OAuthClient:
        return OAuthClient(
            oauth_url=self.config["OAUTH_URL"],
            client_id=self.config["CLIENT_ID"],
            client_secret=self.config["CLIENT_SECRET"],
            timeout=self.timeout,
        )

    @cached_property
    def tokens(self) -> TokenStore:
        return TokenStore(self.db, self.box, self.oauth)

    @cached_property
    def limiter(self) -> PortalRateLimiter:
        return PortalRateLimiter(self.db)

    def client(self, portal: Portal) -> PortalClient:
        """Return a REST client for ``portal`` (cheap; make one per task)."""
        return PortalClient(
            self.db,
            portal,
            tokens=self.tokens,
            limiter=self.limiter,
            timeout=self.timeout,
            default_rate=self.config["RATE_LIMIT"],
            default_burst=self.config["RATE_BURST"],
        )

    def application_token(self, portal: Portal) -> str | None:
        if not portal.application_token_enc:
            return None
        return self.box.decrypt(portal.application_token_enc)

    def close(self) -> None:
        self.db.dispose()
