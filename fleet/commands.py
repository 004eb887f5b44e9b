"""Commands the fleet sends to nodes carry their name in their id (`self-test-3f2a9c...`), so a
`result` coming back says what it answers without a table of commands in flight: ingest files
a self-test's result as a remote inspection of the pole."""

from __future__ import annotations

import uuid
from typing import get_args

from protocols import messages as m

NAMES: frozenset[str] = frozenset(get_args(m.CommandName))


def new_command_id(name: m.CommandName) -> str:
    return f"{name}-{uuid.uuid4().hex[:16]}"


def command_name(command_id: str) -> str | None:
    """The command a fleet-made id names, or None for an id made elsewhere."""
    name, _, tail = command_id.rpartition("-")
    return name if name in NAMES and len(tail) == 16 else None
