"""Commands from the fleet, run on the node: expiry, duplicates, replays, and the result.

The uplink hands over each `Command`; `CommandRunner` refuses expired ones, runs a redelivered
command only once (QoS 1 may deliver twice), calls the handler the agent registered for the
name, and turns what it returns (or raises) into a `CommandResult` for the outbox.

A command's id is its nonce. The ids of commands run are kept on the node's flash until the
commands expire (`SeenCommands`), so a command captured and published again, even after the
agent restarted, is refused as a replay. That list stays short because the node refuses commands
valid for longer than `MAX_VALIDITY_MS` (the fleet's own limit). Nothing is judged by how the
command's time compares with the node's clock but its expiry: a Pi has no real-time clock, and
one that booted without its time server must still take commands.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from protocols import messages as m

log = logging.getLogger(__name__)

Output = dict[str, m.OutputValue]
Handler = Callable[[m.Command], Awaitable[Output]]


MAX_VALIDITY_MS = 86_400_000 + 60_000  # the fleet's longest expiry (a day), and a minute's slack
SEEN_FILE = "commands-seen.json"


class CommandRejected(Exception):
    """A handler refuses the command as given (bad argument, nothing to act on)."""


class SeenCommands:
    """The ids of the commands this node ran, with their expiry, in `<state_dir>/commands-
    seen.json`: written whole and renamed, so a power cut leaves the old list or the new one.
    A list that cannot be read is set aside and started afresh (logged): replay protection
    then holds again from the next command on."""

    def __init__(self, state_dir: Path | None) -> None:
        self.path = state_dir / SEEN_FILE if state_dir is not None else None
        self._expiry: dict[str, int] = {}
        if self.path is None:
            return
        try:
            loaded = json.loads(self.path.read_text())
            if not isinstance(loaded, dict) or not all(
                isinstance(k, str) and isinstance(v, int) for k, v in loaded.items()
            ):
                raise ValueError("not an object of command id to expiry")
            self._expiry = loaded
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as error:
            log.error("commands: %s unreadable (%s); kept as .corrupt, starting afresh", self.path, error)
            os.replace(self.path, self.path.with_suffix(".corrupt"))

    def __contains__(self, command_id: str) -> bool:
        return command_id in self._expiry

    def add(self, command: m.Command, now_ms: int) -> None:
        self._expiry = {k: v for k, v in self._expiry.items() if v >= now_ms}
        self._expiry[command.command_id] = command.expires_at
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as file:
            json.dump(self._expiry, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, self.path)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: m.CommandStatus
    detail: str = ""
    output: Output = field(default_factory=dict)


class CommandRunner:
    def __init__(
        self,
        handlers: dict[str, Handler],
        *,
        publish: Callable[[m.CommandResult], object],
        clock_ms: Callable[[], int],
        timeout_s: float = 60.0,
        remember: int = 256,
        state_dir: Path | None = None,
    ) -> None:
        self.handlers = handlers
        self._publish = publish
        self._clock_ms = clock_ms
        self._timeout_s = timeout_s
        self._seen: OrderedDict[str, m.CommandResult | None] = OrderedDict()  # None: running
        self._remember = remember
        self._ran = SeenCommands(state_dir)  # survives restarts, unlike _seen
        self._tasks: set[asyncio.Task[None]] = set()
        self.counts: dict[str, int] = {}

    def submit(self, command: m.Command) -> None:
        """Start running `command` in the background; its result goes to `publish`."""
        if command.command_id in self._seen:
            previous = self._seen[command.command_id]
            self._count("duplicate")
            if previous is not None:
                self._publish(previous)  # the first result may be what was lost
            return
        now = self._clock_ms()
        refusal = self._refusal(command, now)
        if refusal is not None:
            self._count(refusal.status if command.command_id not in self._ran else "replayed")
            self._publish(self._result(command, refusal))
            return
        self._ran.add(command, now)
        self._seen[command.command_id] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        task = asyncio.create_task(self._run(command), name=f"command-{command.command_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _refusal(self, command: m.Command, now: int) -> Outcome | None:
        """Why the node will not run `command` at all, before it is ever started."""
        if command.command_id in self._ran:
            return Outcome("rejected", f"replayed: command {command.command_id} already ran on this node")
        if now > command.expires_at:
            return Outcome("expired", f"expired {now - command.expires_at} ms before it reached the node")
        if command.expires_at - command.ts > MAX_VALIDITY_MS:
            valid_h = (command.expires_at - command.ts) / 3_600_000
            return Outcome("rejected", f"valid for {valid_h:.1f} h; this node takes at most 24 h")
        return None

    def _result(self, command: m.Command, outcome: Outcome) -> m.CommandResult:
        return m.CommandResult(
            ts=self._clock_ms(),
            seq=0,
            command_id=command.command_id,
            status=outcome.status,
            detail=outcome.detail[:2000],
            output=dict(list(outcome.output.items())[:64]),
        )

    async def _run(self, command: m.Command) -> None:
        outcome = await self.outcome(command)
        self._count(outcome.status)
        result = self._result(command, outcome)
        self._seen[command.command_id] = result
        self._publish(result)

    async def outcome(self, command: m.Command) -> Outcome:
        now = self._clock_ms()
        if now > command.expires_at:  # it may have waited in the queue
            return Outcome("expired", f"expired {now - command.expires_at} ms before it reached the node")
        handler = self.handlers.get(command.name)
        if handler is None:
            return Outcome("unknown-command", f"this node does not run {command.name!r}")
        try:
            async with asyncio.timeout(self._timeout_s):
                output = await handler(command)
        except CommandRejected as error:
            return Outcome("rejected", str(error))
        except TimeoutError:
            return Outcome("failed", f"no outcome within {self._timeout_s} s")
        except Exception as error:
            log.exception("command %s (%s) failed", command.command_id, command.name)
            return Outcome("failed", f"{type(error).__name__}: {error}")
        return Outcome("ok", output=output)

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class LogRing(logging.Handler):
    """The last lines the agent logged, for the fleet's "fetch-logs" and the diagnostics page."""

    def __init__(self, lines: int = 500) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[str] = deque(maxlen=lines)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record)[:500])
        except Exception:
            self.handleError(record)

    def tail(self, count: int, *, max_bytes: int = 12_000) -> list[str]:
        """The last `count` lines that fit in `max_bytes` (a result payload is at most 16 KiB)."""
        picked: list[str] = []
        size = 0
        for line in reversed(self.lines):
            size += len(line.encode()) + 4
            if len(picked) >= count or size > max_bytes:
                break
            picked.append(line)
        return picked[::-1]
