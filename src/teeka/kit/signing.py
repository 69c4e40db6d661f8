"""Keyed hashes and signed tokens (HS256 JWT through PyJWT)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any

import jwt


def keyed_hash(secret: str, purpose: str, value: str) -> str:
    """HMAC-SHA256 of `value`, domain-separated by `purpose`; hex."""
    key = hashlib.sha256(f"{purpose}:{secret}".encode()).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def issue_token(secret: str, *, subject: str, kind: str, now: datetime, ttl: timedelta,
                extra: dict[str, Any] | None = None) -> str:
    claims: dict[str, Any] = {"sub": subject, "knd": kind, "iat": int(now.timestamp()),
                              "exp": int((now + ttl).timestamp())}
    if extra:
        claims.update(extra)
    return jwt.encode(claims, secret, algorithm="HS256")


def read_token(secret: str, token: str, *, kind: str, now: datetime) -> dict[str, Any] | None:
    """The claims of a valid, unexpired token of `kind`, else None."""
    try:
        claims: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"],
                                            options={"verify_exp": False, "verify_iat": False,
                                                     "verify_nbf": False})
    except jwt.PyJWTError:
        return None
    if claims.get("knd") != kind or int(claims.get("exp", 0)) <= int(now.timestamp()):
        return None
    return claims
