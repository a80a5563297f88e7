"""Checking who sent a webhook: a shared secret header, or GitHub's HMAC signature. Pure.

Both compare in constant time. GitHub signs the raw request bytes
(``X-Hub-Signature-256: sha256=<hex HMAC-SHA256>``), so the body is checked exactly as
it arrived: the same JSON re-serialised with other whitespace fails.
"""

from __future__ import annotations

import hashlib
import hmac

SECRET_HEADER = "x-webhook-secret"
GITHUB_SIGNATURE_HEADER = "x-hub-signature-256"
GITHUB_EVENT_HEADER = "x-github-event"
GITHUB_DELIVERY_HEADER = "x-github-delivery"
IDEMPOTENCY_HEADER = "idempotency-key"


def shared_secret_ok(given: str | None, secret: str) -> bool:
    """Whether the ``x-webhook-secret`` header holds the secret.

    >>> shared_secret_ok("s3cret", "s3cret"), shared_secret_ok("s3cre", "s3cret"), shared_secret_ok(None, "s3cret")
    (True, False, False)
    """
    if given is None or not secret:
        return False
    return hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8"))


def github_signature(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``.

    >>> github_signature(b"Hello, World!", "It's a Secret to Everybody")
    'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17'
    """
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def github_signature_ok(header: str | None, body: bytes, secret: str) -> bool:
    """Whether ``header`` is GitHub's signature of exactly these bytes under ``secret``.

    >>> body = b'{"a": 1}'
    >>> github_signature_ok(github_signature(body, "k"), body, "k"), github_signature_ok(github_signature(body, "k"), b'{"a":1}', "k")
    (True, False)
    """
    if not header or not secret or not header.startswith("sha256="):
        return False
    expected = github_signature(body, secret)
    return hmac.compare_digest(header.strip().lower().encode("ascii", "replace"), expected.encode("ascii"))
