"""Ids: ``<prefix>-<5 base36>`` for issues, and short random ids for everything else.

Pure. Uniqueness is enforced by the ledger's primary keys; callers retry on a clash.
"""

from __future__ import annotations

import re

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
ISSUE_ID_RE = re.compile(r"^([a-z][a-z0-9]{0,11})-([0-9a-z]{5})$")


def random_base36(length: int) -> str:
    import secrets  # here, not at the top: it loads OpenSSL, and listings never make an id

    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_issue_id(prefix: str) -> str:
    """A fresh candidate issue id such as ``app-k3x9q``."""
    return f"{prefix}-{random_base36(5)}"


def new_id(kind: str, length: int = 6) -> str:
    """An id for a spawn, MR, escalation, mail or convoy: ``sp-3k9x2q``, ``mr-...``."""
    return f"{kind}-{random_base36(length)}"


def issue_prefix(issue_id: str) -> str | None:
    """The prefix of a well-formed issue id, else None.

    >>> issue_prefix("app-k3x9q"), issue_prefix("nonsense")
    ('app', None)
    """
    match = ISSUE_ID_RE.match(issue_id)
    return match.group(1) if match else None
