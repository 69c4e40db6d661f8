"""Keyed hashes and signed tokens (HS256 JWT, standard encoding; checked against PyJWT in
tests/kit/test_signing.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta
from typing import Any


def keyed_hash(secret: str, purpose: str, value: str) -> str:
    """HMAC-SHA256 of `value`, domain-separated by `purpose`; hex."""
    key = hashlib.sha256(f"{purpose}:{secret}".encode()).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# Every token is an HS256 JWT with this exact header. Reading checks the header byte for byte,
# so no other algorithm (none, RS256 with a public key as secret, ...) can ever be accepted, and
# the common case costs one HMAC instead of a general JWT library's parsing (a waiting-room
# poll checks two tokens; the crowd polls thousands of times a second).
_HEADER = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"  # {"alg":"HS256","typ":"JWT"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, signing_input: str) -> bytes:
    return hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()


def issue_token(secret: str, *, subject: str, kind: str, now: datetime, ttl: timedelta,
                extra: dict[str, Any] | None = None) -> str:
    claims: dict[str, Any] = {"sub": subject, "knd": kind, "iat": int(now.timestamp()),
                              "exp": int((now + ttl).timestamp())}
    if extra:
        claims.update(extra)
    body = f"{_HEADER}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    return f"{body}.{_b64(_mac(secret, body))}"


# Tokens whose signature this process has checked, with their claims: the crowd's phones send
# the same two tokens with every poll, and checking them (HMAC, base64, JSON) was a twentieth
# of a worker's CPU during an opening. Only tokens signed with the secret get in, so what a
# client sends cannot fill it with junk. Kind and expiry are still checked on every read; a
# token is its exact text, so a remembered one is the same token. Bounded (~1 KB a token):
# when full, newcomers are not kept, except that at most every SWEEP_EVERY_S the tokens not
# read again since the last sweep (a queue ticket is replaced by every answer; a token of
# someone gone) and the expired ones are dropped to make room. So the tokens in use stay (a
# crowd larger than the cache polls in turn: evicting the oldest for the newest would make
# every lookup miss), and one account minting tickets, or a crowd moving on, cannot keep the
# cache full of tokens nobody sends again.
VERIFIED_MAX = 65_536
SWEEP_EVERY_S = 60.0  # a waiting person polls at least this often (poll_after_s, 2 to 60 s)
_verified: dict[tuple[str, str], list[Any]] = {}  # (secret, token) -> [claims, read again]
_swept = [0.0]  # when the cache was last swept (monotonic)


def _remember(key: tuple[str, str], claims: dict[str, Any], now: datetime) -> None:
    if len(_verified) >= VERIFIED_MAX:
        if time.monotonic() - _swept[0] < SWEEP_EVERY_S:
            return
        _swept[0] = time.monotonic()
        moment = now.timestamp()
        for old in [k for k, (c, again) in _verified.items() if not again or not _live(c, moment)]:
            del _verified[old]
        for entry in _verified.values():
            entry[1] = False
        if len(_verified) >= VERIFIED_MAX:
            return
    _verified[key] = [claims, False]


def _live(claims: dict[str, Any], moment: float) -> bool:
    try:
        return int(claims.get("exp", 0)) > int(moment)
    except (TypeError, ValueError):
        return False


def _signed_claims(secret: str, token: str, now: datetime) -> dict[str, Any] | None:
    """The claims of a token carrying the secret's signature, else None (remembered)."""
    found = _verified.get((secret, token))
    if found is not None:
        found[1] = True
        claims: dict[str, Any] = found[0]
        return claims
    header, _, rest = token.partition(".")
    payload, _, signature = rest.partition(".")
    if (header != _HEADER or not payload or not signature or len(token) > 4096
            or not token.isascii()):  # hostile text (a cookie, a header): not ours, never a 500
        return None
    # The signature must be the exact text of the MAC: decoding would ignore characters outside
    # the alphabet, padding and a last character's spare bits, and let one valid token be sent
    # as countless different texts (each a new entry in the cache above).
    expected = _b64(_mac(secret, f"{header}.{payload}")).encode("ascii")
    if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
        return None
    try:
        claims = json.loads(_unb64(payload))
    except (ValueError, UnicodeError):
        return None
    if not isinstance(claims, dict):
        return None
    _remember((secret, token), claims, now)
    return claims


def read_lapsed_token(secret: str, token: str, *, kind: str, now: datetime
                      ) -> dict[str, Any] | None:
    """The claims of a token of `kind` signed with the secret, expired or not (a logout with a
    cookie that lapsed: it still proves which session it was), else None."""
    claims = _signed_claims(secret, token, now)
    if claims is None or claims.get("knd") != kind:
        return None
    return dict(claims)


def read_token(secret: str, token: str, *, kind: str, now: datetime) -> dict[str, Any] | None:
    """The claims of a valid, unexpired token of `kind`, else None (a copy: the caller's)."""
    claims = read_lapsed_token(secret, token, kind=kind, now=now)
    return claims if claims is not None and _live(claims, now.timestamp()) else None
