"""Encryption of portal secrets at rest and constant-time comparison."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    """Encrypts tokens with a Fernet key derived from the app's secret key."""

    def __init__(self, secret_key: str) -> None:
        digest = hashlib.sha256(
            b"otklik-token-encryption:" + secret_key.encode()
        ).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, value: str) -> str:
        try:
            return self._fernet.decrypt(value.encode()).decode()
        except InvalidToken as err:
            raise ValueError(
                "stored secret cannot be decrypted: OTKLIK_SECRET_KEY changed since "
                "the portal was installed; reinstall the app on that portal"
            ) from err


def same_secret(given: str | None, expected: str | None) -> bool:
    """Compare two secrets in constant time; a missing side never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def fingerprint(value: str) -> str:
    """Return a short non-reversible id of a secret, safe for logs and caches."""
    return hashlib.sha256(value.encode()).hexdigest()[:12]
