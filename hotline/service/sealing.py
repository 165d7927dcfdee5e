"""Secrets the service must use again — a partner's webhook signing secret — are kept sealed
in the database: encrypted and authenticated (Fernet, from `cryptography`) with a key
derived from HOTLINE_SECRET_KEY (HKDF-SHA256). A copy of the database alone (a dump, a
replica) does not give them away; the running service, which has the key, reads them when
it signs. (A SQLite data dir's backup holds the key file beside the database.)"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "sealed:v1:"  # a value without it was stored before sealing, in clear


class Unsealable(Exception):
    """Sealed with another key: HOTLINE_SECRET_KEY is not the one it was sealed with."""


class Sealer:
    def __init__(self, secret_key: str, purpose: bytes = b"hotline webhook secrets") -> None:
        key = HKDF(algorithm=SHA256(), length=32, salt=None, info=purpose).derive(
            secret_key.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, text: str) -> str:
        return PREFIX + self._fernet.encrypt(text.encode()).decode("ascii")

    def unseal(self, stored: str) -> str:
        """The secret; one stored in clear (before sealing) as it is."""
        if not sealed(stored):
            return stored
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise Unsealable("sealed with another HOTLINE_SECRET_KEY") from None


def sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)
