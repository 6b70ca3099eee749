"""The admin token: how strong it must be for the API to start, and how a request presents it.

The token guards ``POST /v1/runs/{date}``. The API refuses to start with a weak one, and no
setting relaxes that (``pm25 demo`` generates a strong token for itself).
"""

from __future__ import annotations

import hmac
import math
import string

from service.api.deps import Problem
from service.settings import Settings

MIN_TOKEN_CHARS = 32
MIN_DISTINCT_CHARS = 10
MIN_TOKEN_BITS = 128
#: Character classes and the size each adds to the guessing space; anything else counts as
#: one of the 33 printable ASCII symbols.
CLASSES = ((string.ascii_lowercase, 26), (string.ascii_uppercase, 26), (string.digits, 10))
OTHER_CLASS_SIZE = 33
SUGGESTION = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class WeakTokenError(RuntimeError):
    """The admin token is too weak to guard re-runs: the API refuses to start."""


def token_classes(token: str) -> list[int]:
    """The sizes of the character classes ``token`` uses (lower, upper, digits, other)."""
    sizes = [size for chars, size in CLASSES if any(c in chars for c in token)]
    known = "".join(chars for chars, _ in CLASSES)
    if any(c not in known for c in token):
        sizes.append(OTHER_CLASS_SIZE)
    return sizes


def token_bits(token: str) -> float:
    """An estimate of the token's strength: length x log2(the classes' combined size).

    It assumes random characters; the other rules of :func:`token_weakness` catch the
    obviously non-random ones (short, repetitive, one kind of character).
    """
    pool = sum(token_classes(token))
    return len(token) * math.log2(pool) if pool > 1 else 0.0


def token_weakness(token: str) -> str | None:
    """Why ``token`` is too weak, or None when it is strong enough.

    Strong enough: at least 32 characters, at least 10 distinct ones, at least two classes
    (lower case, upper case, digits, symbols), an estimated 128 bits or more, and no
    surrounding whitespace. ``secrets.token_urlsafe(24)`` (32 characters) and
    ``openssl rand -hex 24`` pass.

    Examples
    --------
    >>> token_weakness("a" * 40)
    'it uses 1 distinct characters (at least 10 are needed)'
    >>> token_weakness("bUu8m3Rk1qO9_xwZP0j4y7Tc2NvLs5eA") is None
    True
    """
    if token != token.strip():
        return "it starts or ends with whitespace"
    if len(token) < MIN_TOKEN_CHARS:
        return f"it has {len(token)} characters (at least {MIN_TOKEN_CHARS} are needed)"
    if len(set(token)) < MIN_DISTINCT_CHARS:
        return (
            f"it uses {len(set(token))} distinct characters "
            f"(at least {MIN_DISTINCT_CHARS} are needed)"
        )
    if len(token_classes(token)) < 2:
        return "it uses one kind of character only (mix letters, digits, cases or symbols)"
    if token_bits(token) < MIN_TOKEN_BITS:
        return (
            f"it is too predictable (about {token_bits(token):.0f} bits, {MIN_TOKEN_BITS} needed)"
        )
    return None


def check_admin_token(settings: Settings) -> None:
    """Refuse a weak ``PM25_ADMIN_TOKEN`` with a one-line message that never shows it.

    Raises
    ------
    WeakTokenError
        When :func:`token_weakness` finds a reason.
    """
    why = token_weakness(settings.admin_token.get_secret_value())
    if why is not None:
        raise WeakTokenError(
            f"PM25_ADMIN_TOKEN is too weak: {why}; set a random secret, e.g. from: {SUGGESTION}"
        )


def require_admin(authorization: str | None, settings: Settings) -> None:
    """Accept only ``Authorization: Bearer <PM25_ADMIN_TOKEN>`` (the scheme in any case).

    Raises
    ------
    Problem
        401 with ``WWW-Authenticate: Bearer`` when the header is missing, uses another
        scheme, or carries a wrong token (compared in constant time).
    """
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    token = settings.admin_token.get_secret_value()
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Problem(
            401,
            "Unauthorized",
            "this needs the admin token: Authorization: Bearer <PM25_ADMIN_TOKEN>",
            headers={"WWW-Authenticate": 'Bearer realm="pm25-forecast"'},
        )
    if not token or not hmac.compare_digest(credentials.strip().encode(), token.encode()):
        raise Problem(
            401,
            "Unauthorized",
            "the admin token is wrong",
            headers={"WWW-Authenticate": 'Bearer realm="pm25-forecast", error="invalid_token"'},
        )
