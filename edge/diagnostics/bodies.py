"""What the diagnostics API accepts in a request body, checked strictly (unknown fields refused),
and turning msgspec's complaints into ones that name the field and what would be accepted.

The visit fields reuse protocols.messages' types, so a request that passes here also fits the
SiteVisit the agent signs from it.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from msgspec import Meta

from protocols.messages import Id, Name, Text, VisitAction

from .errors import InvalidRequest

MAX_BODY_BYTES = 16 * 1024

T = TypeVar("T", bound=msgspec.Struct)


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class LoginRequest(_Body, kw_only=True, frozen=True):
    pin: Annotated[str, Meta(min_length=1, max_length=128)]


class VisitRequest(_Body, kw_only=True, frozen=True):
    action: VisitAction
    technician: Name
    fault_id: Id | None = None
    note: Text = ""


# What each field takes, for the error that names it.
ACCEPTED: dict[str, str] = {
    "pin": "the node's diagnostics PIN as a string",
    "action": '"check-in", "resolve" or "check-out"',
    "technician": "the technician's name or id, 1 to 128 characters",
    "fault_id": "the fault's id: a-z, 0-9, '.', '_', '-', starting with a letter or digit, at most 64",
    "note": "text of at most 2000 characters",
}


def decode_body(body: bytes, kind: type[T]) -> T:
    """The request body as `kind`, or InvalidRequest: 400 when it is not a JSON object, 422
    naming the field when a field is missing, unknown or wrong."""
    if not body.strip():
        raise InvalidRequest(400, "empty-body", f"the body is empty: send a JSON object with {_fields(kind)}")
    try:
        value = msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as error:
        raise _explain(str(error), kind) from None
    except msgspec.DecodeError as error:
        raise InvalidRequest(400, "bad-json", f"the body is not valid JSON: {error}") from None
    if isinstance(value, VisitRequest) and not value.technician.strip():
        raise InvalidRequest(
            422,
            "invalid-field",
            "technician: must not be blank; accepted: " + ACCEPTED["technician"],
            field="technician",
        )
    return value


def _explain(message: str, kind: type[msgspec.Struct]) -> InvalidRequest:
    text, _, at = message.partition(" - at `")
    path = at.rstrip("`").removeprefix("$").lstrip(".")
    if text.startswith("Object contains unknown field"):
        field = text.split("`")[1]
        return InvalidRequest(
            422, "unknown-field", f"{field}: unknown field; accepted fields: {_fields(kind)}", field=field
        )
    if text.startswith("Object missing required field"):
        field = text.split("`")[1]
        return InvalidRequest(
            422, "missing-field", f"{field}: required; accepted: {ACCEPTED.get(field, '')}", field=field
        )
    if not path:
        return InvalidRequest(400, "not-an-object", f"{text}: send a JSON object with {_fields(kind)}")
    field = path.split(".")[0].split("[")[0]
    hint = ACCEPTED.get(field)
    return InvalidRequest(
        422, "invalid-field", f"{path}: {text}" + (f"; accepted: {hint}" if hint else ""), field=field
    )


def _fields(kind: type[msgspec.Struct]) -> str:
    return ", ".join(f.name if f.required else f"{f.name} (optional)" for f in msgspec.structs.fields(kind))
