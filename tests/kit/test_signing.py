"""Signed tokens: standard HS256 JWTs (PyJWT reads ours, we read PyJWT's), and nothing else
is ever accepted."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from teeka.kit import signing

SECRET = "s" * 48
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def issue(**extra: object) -> str:
    return signing.issue_token(SECRET, subject="42", kind="queue", now=NOW,
                               ttl=timedelta(hours=1), extra=extra or None)


def test_tokens_are_standard_hs256_jwts() -> None:
    ours = issue(op=3, idx=7, nb=1.5)
    claims = jwt.decode(ours, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {"sub": "42", "knd": "queue", "iat": int(NOW.timestamp()),
                      "exp": int((NOW + timedelta(hours=1)).timestamp()), "op": 3, "idx": 7,
                      "nb": 1.5}
    theirs = jwt.encode({**claims, "idx": 8}, SECRET, algorithm="HS256")
    assert signing.read_token(SECRET, theirs, kind="queue", now=NOW)["idx"] == 8  # type: ignore[index]


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("case", ["wrong secret", "tampered", "alg none", "hs384", "expired",
                                  "other kind", "garbage", "empty", "two parts", "bad base64"])
def test_everything_else_is_refused(case: str) -> None:
    good = issue(idx=1)
    header, payload, sig = good.split(".")
    token = {
        "wrong secret": signing.issue_token("t" * 48, subject="42", kind="queue", now=NOW,
                                            ttl=timedelta(hours=1)),
        "tampered": f"{header}.{_b64({'sub': '1', 'knd': 'queue', 'exp': 2**40})}.{sig}",
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "hs384": jwt.encode({"sub": "42", "knd": "queue", "exp": 2**40}, SECRET,
                            algorithm="HS384"),
        "expired": signing.issue_token(SECRET, subject="42", kind="queue",
                                       now=NOW - timedelta(hours=2), ttl=timedelta(hours=1)),
        "other kind": signing.issue_token(SECRET, subject="42", kind="citizen", now=NOW,
                                          ttl=timedelta(hours=1)),
        "garbage": "not a token at all",
        "empty": "",
        "two parts": f"{header}.{payload}",
        "bad base64": f"{header}.{payload}.%%%%",
    }[case]
    assert signing.read_token(SECRET, token, kind="queue", now=NOW) is None
    assert signing.read_token(SECRET, good, kind="queue", now=NOW) is not None
