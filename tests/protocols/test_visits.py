"""Site visits signed by the node (protocols.visits): what verifies and what does not."""

from __future__ import annotations

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols import messages as m
from protocols.topics import Kind
from protocols.visits import public_key_from_text, public_key_text, sign_visit, verify_visit

NODE = "pole-0042"


def visit(key: Ed25519PrivateKey, **changes: object) -> m.SiteVisit:
    fields: dict[str, object] = {
        "ts": 1_764_000_300_000,
        "visit_id": "visit-1",
        "action": "check-in",
        "technician": "tech-0193",
        "at": 1_764_000_290_000,
        "clock_synced": False,
        "fault_id": "fault-731",
    } | changes
    return sign_visit(NODE, key, **fields)  # type: ignore[arg-type]


def test_a_signed_visit_verifies_and_survives_the_wire() -> None:
    key = Ed25519PrivateKey.generate()
    signed = visit(key)
    decoded = m.decode(Kind.VISIT, m.encode(signed))
    assert isinstance(decoded, m.SiteVisit)
    assert verify_visit(NODE, decoded, key.public_key())


def test_session_fields_are_outside_the_signature() -> None:
    key = Ed25519PrivateKey.generate()
    replayed = msgspec.structs.replace(visit(key), seq=912, ts=1_764_999_000_000, historical=True)
    assert verify_visit(NODE, replayed, key.public_key())


@pytest.mark.parametrize(
    "change",
    [
        {"technician": "someone-else"},
        {"at": 1_764_000_290_001},
        {"action": "resolve"},
        {"fault_id": "fault-732"},
        {"fault_id": None},
        {"clock_synced": True},
        {"note": "fixed"},
    ],
)
def test_any_signed_field_changed_breaks_the_signature(change: dict[str, object]) -> None:
    key = Ed25519PrivateKey.generate()
    tampered = msgspec.structs.replace(visit(key), **change)
    assert not verify_visit(NODE, tampered, key.public_key())


def test_a_visit_is_bound_to_its_node_and_key() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signed = visit(key)
    assert not verify_visit("pole-0043", signed, key.public_key())
    assert not verify_visit(NODE, signed, other.public_key())
    forged = msgspec.structs.replace(visit(other), node_key_id=signed.node_key_id)
    assert not verify_visit(NODE, forged, key.public_key())


def test_public_key_text_round_trips_and_rejects_garbage() -> None:
    public = Ed25519PrivateKey.generate().public_key()
    back = public_key_from_text(public_key_text(public))
    assert back is not None
    assert back == public
    assert public_key_from_text("not base64!") is None
    assert public_key_from_text("AAAA") is None
