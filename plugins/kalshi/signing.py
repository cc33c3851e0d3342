"""Kalshi request signing: RSA-PSS (SHA-256, MGF1-SHA-256, salt 32) over ts + METHOD + path.

The signed bytes are the UTF-8 of the millisecond timestamp, the upper-case
method and the path from ``/trade-api/v2`` (or ``/trade-api/ws/v2``) up to,
not including, the query. The private key never leaves this module: it is not
in any repr, log line or error message.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .errors import KalshiError

__all__ = ["PSS", "Signer", "load_signer", "signed_path"]

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def signed_path(url: str) -> str:
    """The part of ``url`` that is signed: its path, without query or fragment."""
    return urlsplit(url).path or "/"


class Signer:
    """Makes the three ``KALSHI-ACCESS-*`` headers for a request."""

    def __init__(
        self, key_id: str, key: rsa.RSAPrivateKey, wall: Callable[[], float] = time.time
    ) -> None:
        self._key_id = key_id
        self._key = key
        self._wall = wall

    def __repr__(self) -> str:
        return f"<Signer rsa-{self._key.key_size} key_id=<redacted>>"

    def signature(self, timestamp_ms: str, method: str, path: str) -> str:
        message = f"{timestamp_ms}{method.upper()}{path}".encode()
        return base64.b64encode(self._key.sign(message, PSS, hashes.SHA256())).decode("ascii")

    def headers(self, method: str, url: str) -> dict[str, str]:
        """Fresh signed headers for ``method`` on ``url`` (now, by the wall clock)."""
        timestamp_ms = str(int(self._wall() * 1000))
        return {
            "KALSHI-ACCESS-KEY": self._key_id,
            "KALSHI-ACCESS-TIMESTAMP": timestamp_ms,
            "KALSHI-ACCESS-SIGNATURE": self.signature(timestamp_ms, method, signed_path(url)),
        }


def load_signer(
    key_id: str | None, private_key: str | None, wall: Callable[[], float] = time.time
) -> Signer:
    """A signer from the configured secrets; a clear ``KalshiError`` (quoting neither) if unusable."""
    off = {"reachable": False, "authenticated": False}
    if not key_id or not private_key:
        raise KalshiError("kalshi: key_id and private_key are required", **off)
    try:
        key = serialization.load_pem_private_key(private_key.encode(), password=None)
    except (ValueError, TypeError, UnicodeError):
        # the cause may quote key material: never chain it
        raise KalshiError("kalshi: private_key is not an unencrypted PEM private key", **off) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KalshiError("kalshi: private_key is not an RSA key", **off)
    return Signer(key_id, key, wall)
