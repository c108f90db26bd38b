"""Per-portal OAuth tokens: encrypted storage and a refresh lock.

Refresh tokens rotate: the OAuth server consumes the old one, and a second
refresh with it gets invalid_grant. So a refresh happens under a row lock on
the portal (SELECT ... FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on SQLite),
re-reads the row, and reuses the pair when another process already rotated
it (``token_version`` moved on).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from b24app.bitrix.errors import PortalInactive
from b24app.bitrix.oauth import OAuthClient, OAuthError, TokenGrant
from b24app.crypto import SecretBox
from b24app.db import Database
from b24app.models import Portal

logger = logging.getLogger(__name__)

# Refresh a little before expiry so a call does not race the deadline.
EXPIRY_MARGIN = timedelta(seconds=60)


class TokenStore:
    """Reads, refreshes and stores the app's token pair for each portal."""

    def __init__(self, db: Database, box: SecretBox, oauth: OAuthClient) -> None:
        self._db = db
        self._box = box
        self._oauth = oauth

    def access_token(self, portal: Portal) -> tuple[str, int]:
        """Return a usable access token and the version it belongs to."""
        if portal.token_expires_at - EXPIRY_MARGIN <= datetime.now(UTC):
            return self.refresh(portal, seen_version=portal.token_version)
        return self._box.decrypt(portal.access_token_enc), portal.token_version

    def refresh(self, portal: Portal, *, seen_version: int) -> tuple[str, int]:
        """Rotate the pair unless another process did since ``seen_version``.

        Updates ``portal`` in place and returns the new access token and
        version. Raises PortalInactive when the OAuth server revoked the grant.
        """
        with self._db.session() as session:
            row = session.scalars(
                select(Portal).where(Portal.id == portal.id).with_for_update()
            ).one()

            if row.token_version != seen_version:
                logger.info(
                    "token already refreshed by another process",
                    extra={"member_id": row.member_id},
                )
                _copy_tokens(row, portal)
                return self._box.decrypt(row.access_token_enc), row.token_version

            try:
                grant = self._oauth.refresh(self._box.decrypt(row.refresh_token_enc))
            except OAuthError as err:
                if not err.revoked:
                    raise
                # Commit the deactivation before raising: leaving the block
                # with an exception would roll it back.
                self._deactivate(row, f"{err.code}: {err.description}")
                revoked = err
            else:
                revoked = None
                if grant.member_id != row.member_id:
                    raise OAuthError(
                        "member_mismatch", "refresh answered for another portal"
                    )
                self.store_grant(row, grant)
            _copy_tokens(row, portal)
            portal.inactive_reason = row.inactive_reason

        if revoked is not None:
            raise PortalInactive(
                "oauth.token", revoked.code, revoked.description
            ) from revoked
        logger.info(
            "token refreshed",
            extra={"member_id": portal.member_id, "version": portal.token_version},
        )
        return grant.access_token, portal.token_version

    def store_grant(self, portal: Portal, grant: TokenGrant) -> None:
        """Write a fresh pair onto ``portal`` (the caller commits)."""
        portal.access_token_enc = self._box.encrypt(grant.access_token)
        portal.refresh_token_enc = self._box.encrypt(grant.refresh_token)
        portal.token_expires_at = grant.expires_at
        portal.token_refreshed_at = datetime.now(UTC)
        portal.token_version = (portal.token_version or 0) + 1
        if grant.user_id:
            portal.token_user_id = grant.user_id

    def mark_inactive(self, portal: Portal, reason: str) -> None:
        """Stop all calls to the portal; a reinstall makes it active again."""
        with self._db.session() as session:
            row = session.get(Portal, portal.id)
            if row is not None:
                self._deactivate(row, reason)
        portal.status = "inactive"
        portal.inactive_reason = reason

    @staticmethod
    def _deactivate(row: Portal, reason: str) -> None:
        row.status = "inactive"
        row.inactive_reason = reason[:255]
        logger.warning(
            "portal marked inactive",
            extra={"member_id": row.member_id, "reason": reason[:80]},
        )


def _copy_tokens(source: Portal, target: Portal) -> None:
    target.access_token_enc = source.access_token_enc
    target.refresh_token_enc = source.refresh_token_enc
    target.token_expires_at = source.token_expires_at
    target.token_version = source.token_version
    target.status = source.status
