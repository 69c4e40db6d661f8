"""Verifiable vaccination certificates in the form the EU Digital COVID Certificate (HCERT)
and WHO DDCC:VS verifiers read: the certificate's data (`v` for vaccination) in a CBOR Web
Token (claim -260 → {1: payload}), signed as COSE_Sign1 with ES256 (ECDSA P-256, SHA-256),
zlib-compressed, Base45-encoded (RFC 9285), prefixed `HC1:`; printed as a QR code (error
correction Q). Anyone with the published public key (`/api/v1/certificates/keys`) can check
a certificate offline, with any HCERT verifier; nothing here is Teeka-specific.

Pure functions over bytes and keys: the signing key is given by the caller
(teeka.certificate.service.signing_key).
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

PREFIX = "HC1:"
_B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_B45_VALUE = {c: i for i, c in enumerate(_B45)}
COSE_SIGN1_TAG = 18
ES256 = -7  # COSE algorithm
HEADER_ALG, HEADER_KID = 1, 4
CLAIM_ISS, CLAIM_EXP, CLAIM_IAT, CLAIM_HCERT = 1, 4, 6, -260
MAX_COMPRESSED = 8 * 1024  # a certificate is a few hundred bytes; refuse zip bombs early
MAX_PAYLOAD = 64 * 1024


class NotACertificate(ValueError):
    """The text is not a certificate this code can read, or its signature does not hold.
    `reason` is a stable code (see verify)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------- Base45 (RFC 9285)

def b45encode(data: bytes) -> str:
    out = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        n, c = divmod(n, 45)
        e, d = divmod(n, 45)
        out += [_B45[c], _B45[d], _B45[e]]
    if len(data) % 2:
        e, c = divmod(data[-1], 45)
        out += [_B45[c], _B45[e]]
    return "".join(out)


def b45decode(text: str) -> bytes:
    try:
        values = [_B45_VALUE[c] for c in text]
    except KeyError:
        raise NotACertificate("not_base45") from None
    out = bytearray()
    for i in range(0, len(values), 3):
        chunk = values[i:i + 3]
        if len(chunk) == 3:
            n = chunk[0] + chunk[1] * 45 + chunk[2] * 45 * 45
            if n > 0xFFFF:
                raise NotACertificate("not_base45")
            out += bytes(divmod(n, 256))
        elif len(chunk) == 2:
            n = chunk[0] + chunk[1] * 45
            if n > 0xFF:
                raise NotACertificate("not_base45")
            out.append(n)
        else:
            raise NotACertificate("not_base45")
    return bytes(out)


# ---------------------------------------------------------------- keys

def key_id(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The first 8 bytes of the SHA-256 of the key's DER SubjectPublicKeyInfo (HCERT takes
    them of the signing certificate; Teeka publishes keys, not certificates)."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()[:8]


def jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public key as a JWK (RFC 7517), with its kid (Base64 of key_id, as HCERT lists)."""
    import base64

    numbers = public_key.public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

    return {"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
            "kid": base64.b64encode(key_id(public_key)).decode(),
            "x": b64(numbers.x), "y": b64(numbers.y)}


# ---------------------------------------------------------------- sign and verify

def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected, b"", payload])


def sign(hcert: dict[str, Any], *, key: ec.EllipticCurvePrivateKey, issuer: str,
         issued_at: datetime, expires_at: datetime) -> str:
    """The certificate as the `HC1:` text a QR code carries."""
    protected = cbor2.dumps({HEADER_ALG: ES256, HEADER_KID: key_id(key.public_key())})
    payload = cbor2.dumps({CLAIM_ISS: issuer, CLAIM_IAT: int(issued_at.timestamp()),
                           CLAIM_EXP: int(expires_at.timestamp()), CLAIM_HCERT: {1: hcert}})
    der = key.sign(_sig_structure(protected, payload), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    cose = cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))
    return PREFIX + b45encode(zlib.compress(cose, 9))


@dataclass(frozen=True)
class Verified:
    kid: bytes
    issuer: str
    issued_at: int
    expires_at: int
    hcert: dict[str, Any]


def verify(text: str, keys: dict[bytes, ec.EllipticCurvePublicKey]) -> Verified:
    """Read an `HC1:` text and check its signature against the key its kid names. Raises
    NotACertificate with a reason: not_hc1, not_base45, not_zlib, not_cose, unknown_key,
    bad_signature."""
    text = text.strip()
    if not text.startswith(PREFIX):
        raise NotACertificate("not_hc1")
    compressed = b45decode(text[len(PREFIX):])
    if len(compressed) > MAX_COMPRESSED:
        raise NotACertificate("not_zlib")
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(compressed, MAX_PAYLOAD)
        if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
            raise NotACertificate("not_zlib")  # too large, cut short, or followed by more
    except zlib.error:
        raise NotACertificate("not_zlib") from None
    try:
        cose = cbor2.loads(raw)
        if isinstance(cose, cbor2.CBORTag):
            if cose.tag != COSE_SIGN1_TAG:
                raise NotACertificate("not_cose")
            cose = cose.value
        if not isinstance(cose, (list, tuple)) or len(cose) != 4:
            raise NotACertificate("not_cose")
        protected, _unprotected, payload, signature = cose
        header = cbor2.loads(protected)
        claims = cbor2.loads(payload)
        kid, alg = header.get(HEADER_KID), header.get(HEADER_ALG)
        hcert = claims[CLAIM_HCERT][1]
        issuer, iat, exp = claims[CLAIM_ISS], claims[CLAIM_IAT], claims[CLAIM_EXP]
    except NotACertificate:
        raise
    except Exception:  # any malformed CBOR or a missing part: not a certificate
        raise NotACertificate("not_cose") from None
    if alg != ES256 or not isinstance(kid, bytes) or not isinstance(signature, bytes) \
            or len(signature) != 64 or not isinstance(hcert, dict):
        raise NotACertificate("not_cose")
    public = keys.get(kid)
    if public is None:
        raise NotACertificate("unknown_key")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                               int.from_bytes(signature[32:], "big"))
    try:
        public.verify(der, _sig_structure(protected, payload), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise NotACertificate("bad_signature") from None
    return Verified(kid=kid, issuer=str(issuer), issued_at=int(iat), expires_at=int(exp),
                    hcert=hcert)
