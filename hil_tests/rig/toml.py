"""TOML text for the agent's config file, from plain values: the rig writes each node's
config from a dict so a scenario can add or change one section."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list) and all(not isinstance(v, Mapping) for v in value):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def toml_text(config: Mapping[str, Any]) -> str:
    """Top-level keys are sections ([name]) or arrays of tables ([[name]]) of scalars."""
    lines: list[str] = []
    for section, body in config.items():
        tables = body if isinstance(body, list) else [body]
        header = f"[[{section}]]" if isinstance(body, list) else f"[{section}]"
        for table in tables:
            lines.append(header)
            lines.extend(f"{key} = {_value(value)}" for key, value in table.items())
            lines.append("")
    return "\n".join(lines)
