"""Signed tokens: standard HS256 JWTs (PyJWT reads ours, we read PyJWT's), and nothing else
is ever accepted."""

from __future__ import annotations

import base64
import json
import time
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


def _spare(last: str) -> str:
    """Another last character of a 32-byte value's base64url text that decodes to the same
    bytes (its two low bits are not part of the value)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return alphabet[alphabet.index(last) ^ 1]


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("case", ["wrong secret", "tampered", "alg none", "hs384", "expired",
                                  "other kind", "garbage", "empty", "two parts", "bad base64",
                                  "signature and junk", "signature padded",
                                  "signature's spare bits", "non-ascii signature"])
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
        # the same MAC in other texts: one valid token must not become countless cache keys
        "signature and junk": f"{good}!!!!" + "*" * 3000,
        "signature padded": f"{good}=",
        "signature's spare bits": f"{header}.{payload}.{sig[:-1]}{_spare(sig[-1])}",
        "non-ascii signature": f"{good[:-1]}\udcff\ud800é",
    }[case]
    assert signing.read_token(SECRET, token, kind="queue", now=NOW) is None
    assert signing.read_token(SECRET, good, kind="queue", now=NOW) is not None


def test_a_checked_token_is_remembered_but_still_expires_and_keeps_its_kind() -> None:
    """The claims of a token whose signature was checked are kept (the crowd sends the same
    tokens with every poll); expiry and kind are checked on every read all the same, another
    secret does not find them, a forged token never gets in, and what a caller does with its
    claims does not change what the next caller reads."""
    signing._verified.clear()
    good = issue(idx=1)
    first = signing.read_token(SECRET, good, kind="queue", now=NOW)
    assert first is not None and (SECRET, good) in signing._verified
    first["idx"] = 99  # the caller's copy
    assert signing.read_token(SECRET, good, kind="queue", now=NOW)["idx"] == 1  # type: ignore[index]
    assert signing.read_token(SECRET, good, kind="citizen", now=NOW) is None
    assert signing.read_token(SECRET, good, kind="queue", now=NOW + timedelta(hours=2)) is None
    assert signing.read_token("t" * 48, good, kind="queue", now=NOW) is None
    header, _, sig = good.split(".")
    forged = f"{header}.{_b64({'sub': '1', 'knd': 'queue', 'exp': 2**40})}.{sig}"
    assert signing.read_token(SECRET, forged, kind="queue", now=NOW) is None
    assert len(signing._verified) == 1  # only the token with a good signature was kept


def test_the_checked_tokens_kept_are_bounded(monkeypatch) -> None:
    """Full: newcomers are not kept (the ones kept keep hitting while a larger crowd polls in
    turn) but are still read; at a sweep (at most every SWEEP_EVERY_S) the tokens not read
    again since the last sweep and the expired ones make room, and the ones in use stay."""
    signing._verified.clear()
    monkeypatch.setattr(signing, "VERIFIED_MAX", 5)
    monkeypatch.setattr(signing, "_swept", [time.monotonic()])  # swept just now
    tokens = [issue(idx=i) for i in range(12)]
    for t in tokens:
        assert signing.read_token(SECRET, t, kind="queue", now=NOW) is not None
        assert len(signing._verified) <= 5
    assert all((SECRET, t) in signing._verified for t in tokens[:5])
    # Only tokens[0] and [1] are sent again (say, two people's sign-in tokens); 2 to 4 were
    # tickets replaced by the next answer, or one account minting tickets to fill the cache.
    signing._swept[0] = time.monotonic()
    for _ in range(2):
        for t in tokens[:2]:
            assert signing.read_token(SECRET, t, kind="queue", now=NOW) is not None
    fresh = [issue(idx=100 + i) for i in range(7)]
    assert signing.read_token(SECRET, fresh[0], kind="queue", now=NOW) is not None
    assert (SECRET, fresh[0]) not in signing._verified  # swept moments ago: not yet
    signing._swept[0] -= signing.SWEEP_EVERY_S
    for t in fresh:
        assert signing.read_token(SECRET, t, kind="queue", now=NOW) is not None
    assert {k[1] for k in signing._verified} == {*tokens[:2], *fresh[:3]}
    # Next sweep: of those, the ones not read since are dropped; expired ones too.
    assert signing.read_token(SECRET, fresh[0], kind="queue", now=NOW) is not None
    assert signing.read_token(SECRET, tokens[0], kind="queue", now=NOW) is not None
    later = NOW + timedelta(minutes=30)
    latest = signing.issue_token(SECRET, subject="43", kind="queue", now=later,
                                 ttl=timedelta(hours=1), extra={"idx": 7})
    signing._swept[0] -= signing.SWEEP_EVERY_S
    assert signing.read_token(SECRET, latest, kind="queue", now=later) is not None
    assert {k[1] for k in signing._verified} == {tokens[0], fresh[0], latest}
    expired = NOW + timedelta(hours=2)  # tokens[0], fresh[0] and latest have expired
    more = [signing.issue_token(SECRET, subject="43", kind="queue", now=expired,
                                ttl=timedelta(hours=1), extra={"idx": 10 + i}) for i in range(3)]
    for t in more[:2]:
        assert signing.read_token(SECRET, t, kind="queue", now=expired) is not None
    for t in (tokens[0], fresh[0], latest, more[0]):  # read again; more[1] is not
        signing.read_token(SECRET, t, kind="queue", now=expired)
    signing._swept[0] -= signing.SWEEP_EVERY_S
    assert signing.read_token(SECRET, more[2], kind="queue", now=expired) is not None
    assert {k[1] for k in signing._verified} == {more[0], more[2]}
    signing._verified.clear()


@pytest.mark.parametrize("middle", ["\xe9", "é", "ey\u0915", "\udcff"])
def test_a_token_with_text_outside_ascii_is_refused_not_an_error(middle: str) -> None:
    """Tokens come from headers and cookies a client writes: any text is refused quietly."""
    token = f"{issue().split('.')[0]}.{middle}.x"
    assert signing.read_token(SECRET, token, kind="queue", now=NOW) is None
