"""Signing technicians' site visits: the node signs, the fleet verifies (no I/O).

The signature covers the visit's canonical bytes (UTF-8 JSON, keys sorted, no whitespace) with
the node id inside, so a visit signed by one pole cannot be passed off as another's. The
session fields (`seq`, `ts`, `historical`) are left out: the same visit replayed from the
node's outbox in a later session still verifies. The fleet learns the node's public key from
its birth (`node_key`) when the node is enrolled.
"""

from __future__ import annotations

import base64
import binascii

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocols.messages import SiteVisit, VisitAction
from protocols.ota import key_id

SIGNED_FIELDS = ("visit_id", "action", "technician", "at", "clock_synced", "fault_id", "note", "node_key_id")


def visit_body(node_id: str, visit: SiteVisit) -> bytes:
    fields = {name: getattr(visit, name) for name in SIGNED_FIELDS}
    return msgspec.json.encode({"node_id": node_id, **fields}, order="sorted")


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """The form a birth carries (`node_key`): base64 of the raw 32 bytes."""
    return base64.b64encode(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def public_key_from_text(text: str) -> Ed25519PublicKey | None:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return None


def sign_visit(
    node_id: str,
    key: Ed25519PrivateKey,
    *,
    ts: int,
    visit_id: str,
    action: VisitAction,
    technician: str,
    at: int,
    clock_synced: bool | None = None,
    fault_id: str | None = None,
    note: str = "",
) -> SiteVisit:
    unsigned = SiteVisit(
        ts=ts,
        seq=0,
        visit_id=visit_id,
        action=action,
        technician=technician,
        at=at,
        clock_synced=clock_synced,
        fault_id=fault_id,
        note=note,
        node_key_id=key_id(key.public_key()),
        signature="A" * 86 + "==",  # replaced below; the body does not cover it
    )
    signature = base64.b64encode(key.sign(visit_body(node_id, unsigned))).decode("ascii")
    return msgspec.structs.replace(unsigned, signature=signature)


def verify_visit(node_id: str, visit: SiteVisit, public_key: Ed25519PublicKey) -> bool:
    """True only if `public_key` is the node's key and it signed this very visit. Never raises."""
    if visit.node_key_id != key_id(public_key):
        return False
    try:
        public_key.verify(base64.b64decode(visit.signature, validate=True), visit_body(node_id, visit))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True
