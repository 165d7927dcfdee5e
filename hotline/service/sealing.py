"""Secrets the service must use again — a partner's webhook signing secret — are kept sealed
in the database: encrypted and authenticated (Fernet, from `cryptography`) with a key
derived from HOTLINE_SECRET_KEY (HKDF-SHA256). A copy of the database alone (a dump, a
replica) does not give them away; the running service, which has the key, reads them when
it signs. (A SQLite data dir's backup holds the key file beside the database.)

While the key is rotated, values sealed with a previous one (HOTLINE_SECRET_KEY_PREVIOUS)
are still read, and `serve` seals them again with the new one when it starts."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "sealed:v1:"  # a value without it was stored before sealing, in clear


class Unsealable(Exception):
    """Sealed with a key this process does not have (HOTLINE_SECRET_KEY, or a previous one)."""


def _fernet(secret_key: str, purpose: bytes) -> Fernet:
    key = HKDF(algorithm=SHA256(), length=32, salt=None, info=purpose).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


class Sealer:
    def __init__(
        self,
        secret_key: str,
        previous: Sequence[str] = (),
        purpose: bytes = b"hotline webhook secrets",
    ) -> None:
        """Seals with `secret_key`; opens what it or one of the `previous` keys sealed."""
        self._current = _fernet(secret_key, purpose)
        self._any = MultiFernet([self._current, *(_fernet(key, purpose) for key in previous)])

    def seal(self, text: str) -> str:
        return PREFIX + self._current.encrypt(text.encode()).decode("ascii")

    def unseal(self, stored: str) -> str:
        """The secret; one stored in clear (before sealing) as it is."""
        if not sealed(stored):
            return stored
        try:
            return self._any.decrypt(_token(stored)).decode()
        except (InvalidToken, UnicodeError):
            raise Unsealable("sealed with another HOTLINE_SECRET_KEY") from None

    def resealed(self, stored: str) -> str | None:
        """`stored` sealed with the current key when it is not yet (kept in clear, or sealed
        with a previous key); None when it already is. Unsealable when no key opens it."""
        if not sealed(stored):
            return self.seal(stored)
        try:
            self._current.decrypt(_token(stored))
            return None
        except (InvalidToken, UnicodeError):
            pass
        try:
            return PREFIX + self._any.rotate(_token(stored)).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise Unsealable("sealed with another HOTLINE_SECRET_KEY") from None


def _token(stored: str) -> bytes:
    return stored[len(PREFIX) :].encode("ascii")


def sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)
