"""Commands from the fleet, run on the node: expiry, duplicates, and the result message.

The uplink hands over each `Command`; `CommandRunner` refuses expired ones, runs a redelivered
command only once (QoS 1 may deliver twice), calls the handler the agent registered for the
name, and turns what it returns (or raises) into a `CommandResult` for the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from protocols import messages as m

log = logging.getLogger(__name__)

Output = dict[str, m.OutputValue]
Handler = Callable[[m.Command], Awaitable[Output]]


class CommandRejected(Exception):
    """A handler refuses the command as given (bad argument, nothing to act on)."""


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
    ) -> None:
        self.handlers = handlers
        self._publish = publish
        self._clock_ms = clock_ms
        self._timeout_s = timeout_s
        self._seen: OrderedDict[str, m.CommandResult | None] = OrderedDict()  # None: running
        self._remember = remember
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
        self._seen[command.command_id] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        task = asyncio.create_task(self._run(command), name=f"command-{command.command_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, command: m.Command) -> None:
        outcome = await self.outcome(command)
        self._count(outcome.status)
        result = m.CommandResult(
            ts=self._clock_ms(),
            seq=0,
            command_id=command.command_id,
            status=outcome.status,
            detail=outcome.detail[:2000],
            output=dict(list(outcome.output.items())[:64]),
        )
        self._seen[command.command_id] = result
        self._publish(result)

    async def outcome(self, command: m.Command) -> Outcome:
        now = self._clock_ms()
        if now > command.expires_at:
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
