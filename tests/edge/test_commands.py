"""The node's refusal of replayed, expired and over-long commands (edge.commands), across a
restart of the agent: a command's id is its nonce, remembered on flash until it expires."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from edge.commands import MAX_VALIDITY_MS, SEEN_FILE, CommandRunner, SeenCommands
from protocols import messages as m

NOW = 1_764_000_000_000


def command(command_id: str, *, ts: int = NOW - 1_000, valid_ms: int = 300_000) -> m.Command:
    return m.Command(
        ts=ts, command_id=command_id, name="ping", issued_by="operator-7", expires_at=ts + valid_ms
    )


class Node:
    """A CommandRunner as the agent makes it, with a `ping` that counts its runs."""

    def __init__(self, state_dir: Path, now: int = NOW) -> None:
        self.runs: list[str] = []
        self.results: list[m.CommandResult] = []
        self.now = now

        async def ping(cmd: m.Command) -> dict[str, m.OutputValue]:
            self.runs.append(cmd.command_id)
            return {"pong": True}

        self.runner = CommandRunner(
            {"ping": ping}, publish=self.results.append, clock_ms=lambda: self.now, state_dir=state_dir
        )

    def give(self, *commands: m.Command) -> dict[str, m.CommandResult]:
        async def run() -> None:
            for cmd in commands:
                self.runner.submit(cmd)
                await asyncio.sleep(0.05)  # its result is out before the next arrives
            await self.runner.aclose()

        asyncio.run(run())
        return {r.command_id: r for r in self.results}


def test_a_command_replayed_after_a_restart_is_refused_and_not_run(tmp_path: Path) -> None:
    first = Node(tmp_path)
    assert first.give(command("c-1"))["c-1"].status == "ok"
    restarted = Node(tmp_path)  # a new agent process, same flash
    result = restarted.give(command("c-1"))["c-1"]
    assert (result.status, result.detail) == ("rejected", "replayed: command c-1 already ran on this node")
    assert restarted.runs == []
    assert restarted.runner.counts == {"replayed": 1}


def test_a_redelivery_in_the_same_run_gets_the_first_result_again(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.give(command("c-1"), command("c-1"))
    assert node.runs == ["c-1"]
    assert [r.status for r in node.results] == ["ok", "ok"]  # the first result, sent again


def test_an_expired_command_is_refused(tmp_path: Path) -> None:
    node = Node(tmp_path)
    result = node.give(command("c-2", ts=NOW - 600_000, valid_ms=60_000))["c-2"]
    assert result.status == "expired"
    assert "expired 540000 ms before it reached the node" in result.detail
    assert node.runs == []


def test_a_command_valid_for_longer_than_a_day_is_refused(tmp_path: Path) -> None:
    node = Node(tmp_path)
    result = node.give(command("c-3", valid_ms=MAX_VALIDITY_MS + 1))["c-3"]
    assert result.status == "rejected"
    assert "this node takes at most 24 h" in result.detail
    assert node.runs == []
    assert node.give(command("c-4", valid_ms=86_400_000))["c-4"].status == "ok"  # the fleet's longest


def test_ids_are_forgotten_once_their_commands_expire(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.give(command("c-1", valid_ms=60_000))
    later = Node(tmp_path, now=NOW + 3_600_000)
    later.give(command("c-9", ts=NOW + 3_600_000))
    kept = json.loads((tmp_path / SEEN_FILE).read_text())
    assert sorted(kept) == ["c-9"]


def test_an_unreadable_list_is_set_aside_and_protection_resumes(tmp_path: Path) -> None:
    (tmp_path / SEEN_FILE).write_text("{torn")
    node = Node(tmp_path)
    assert node.give(command("c-1"))["c-1"].status == "ok"
    assert (tmp_path / "commands-seen.corrupt").read_text() == "{torn"
    assert Node(tmp_path).give(command("c-1"))["c-1"].status == "rejected"


@given(
    st.one_of(
        st.binary(max_size=300),
        st.dictionaries(st.text(max_size=8), st.integers()).map(lambda d: json.dumps(d).encode()),
    )
)
def test_whatever_the_file_holds_the_node_starts_and_protection_resumes(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder)
        (path / SEEN_FILE).write_bytes(content)
        seen = SeenCommands(path)  # never raises
        seen.add(command("c-new"), NOW)
        assert "c-new" in SeenCommands(path)


def test_without_a_state_dir_replays_are_caught_in_memory_only() -> None:
    seen = SeenCommands(None)
    seen.add(command("c-1"), NOW)
    assert "c-1" in seen
