"""The certificate format, checked independently of our reader: Base45 against RFC 9285's
examples; a certificate made by hcert.sign read back by hand with cbor2 and cryptography as
the HCERT specification describes it (zlib, COSE_Sign1, ES256 over Sig_structure); a changed
byte, another key, or garbage refused with a reason."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from teeka.certificate import hcert

PAYLOAD = {"ver": "1.3.0", "nam": {"fn": "Sahu", "fnt": "SAHU"}, "dob": "1958",
           "v": [{"tg": "840539006", "vp": "J07BX03", "mp": "Covishield", "ma": "ORG-100001981",
                  "dn": 2, "sd": 2, "dt": "2026-11-29", "co": "IN", "is": "Health Department",
                  "ci": "URN:UVCI:01:IN:TK12345678901234D2"}]}


@pytest.mark.parametrize("raw, text", [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"),
                                       (b"base-45", "UJCLQE7W581"), (b"ietf!", "QED8WEX0"),
                                       (b"", "")])
def test_base45_as_rfc_9285(raw: bytes, text: str) -> None:
    assert hcert.b45encode(raw) == text
    assert hcert.b45decode(text) == raw


def _sign(key: ec.EllipticCurvePrivateKey) -> str:
    now = datetime(2026, 11, 29, tzinfo=UTC)
    return hcert.sign(PAYLOAD, key=key, issuer="IN", issued_at=now,
                      expires_at=now + timedelta(days=365))


def test_a_certificate_reads_back_by_the_specification_not_by_our_reader() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    text = _sign(key)
    assert text.startswith("HC1:")
    cose = cbor2.loads(zlib.decompress(hcert.b45decode(text[4:])))
    assert cose.tag == 18
    protected, _unprotected, payload, signature = cose.value
    header = cbor2.loads(protected)
    assert header[1] == -7 and header[4] == hcert.key_id(key.public_key())
    claims = cbor2.loads(payload)
    assert claims[1] == "IN" and claims[4] - claims[6] == 365 * 86400
    assert claims[-260][1] == PAYLOAD
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    key.public_key().verify(  # raises if the signature does not hold
        encode_dss_signature(int.from_bytes(signature[:32], "big"),
                             int.from_bytes(signature[32:], "big")),
        to_be_signed, ec.ECDSA(hashes.SHA256()))
    found = hcert.verify(text, {hcert.key_id(key.public_key()): key.public_key()})
    assert found.hcert == PAYLOAD and found.issuer == "IN"


def test_tampered_foreign_and_garbage_are_refused_with_a_reason() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    keys = {hcert.key_id(key.public_key()): key.public_key()}
    text = _sign(key)
    cose = cbor2.loads(zlib.decompress(hcert.b45decode(text[4:])))
    protected, unprotected, payload, signature = cose.value
    claims = cbor2.loads(payload)
    claims[-260][1]["v"][0]["dn"] = 3  # one more dose than given
    forged = cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, cbor2.dumps(claims),
                                            signature]))
    cases = {
        "HC1:" + hcert.b45encode(zlib.compress(forged)): "bad_signature",
        _sign(ec.generate_private_key(ec.SECP256R1())): "unknown_key",
        "hello": "not_hc1", "HC1:abc": "not_base45",
        "HC1:" + hcert.b45encode(b"not zlib"): "not_zlib",
        "HC1:" + hcert.b45encode(zlib.compress(b"\xff\x00")): "not_cose",
        "HC1:" + hcert.b45encode(zlib.compress(b"\0" * 10_000_000)): "not_zlib",
    }
    for bad, reason in cases.items():
        with pytest.raises(hcert.NotACertificate) as raised:
            hcert.verify(bad, keys)
        assert raised.value.reason == reason, (bad[:40], raised.value.reason)


def test_only_the_specified_shape_is_read() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    keys = {hcert.key_id(key.public_key()): key.public_key()}
    text = _sign(key)
    raw = zlib.decompress(hcert.b45decode(text[4:]))
    protected, _unprotected, payload, signature = cbor2.loads(raw).value
    as_map = cbor2.dumps(cbor2.CBORTag(18, {protected: 1, b"x": 2, payload: 3, signature: 4}))
    cut = zlib.compress(raw)[:-3]
    for bad, reason in (("HC1:" + hcert.b45encode(zlib.compress(as_map)), "not_cose"),
                        ("HC1:" + hcert.b45encode(zlib.compress(raw) + b"more"), "not_zlib"),
                        ("HC1:" + hcert.b45encode(cut), "not_zlib")):
        with pytest.raises(hcert.NotACertificate) as raised:
            hcert.verify(bad, keys)
        assert raised.value.reason == reason


def test_names_in_the_form_verifiers_read() -> None:
    from teeka.certificate.service import _icao, _names
    assert _icao("José Müller-Lüdenscheidt") == "JOSE<MULLER<LUDENSCHEIDT"
    assert _icao("रमेश") == "X"
    long = _names("A" * 100 + " " + "B" * 100)
    assert all(len(v) <= 80 for v in long.values())
