"""A remote spawn's report-back token: made when the spawn starts, handed to the agent as
a 0600 file on its host, and known to the ledger only as its SHA-256 (so the ledger, its
backups and its logs never hold a usable secret). It dies with the spawn: the server
accepts it only while the spawn it belongs to is live.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token() -> tuple[str, str]:
    """``(token, its hash)``: the token goes to the agent, the hash to the ledger."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    """The stored form of a token.

    >>> token_hash("x")[:12]
    '2d711642b726'
    """
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str | None) -> bool:
    """Whether ``token`` is the one whose hash was stored (constant time)."""
    return stored_hash is not None and hmac.compare_digest(token_hash(token), stored_hash)
