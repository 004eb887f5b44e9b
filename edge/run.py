"""`watchpost edge run`: the agent as a process: logging, signals, exit status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from edge.agent import Agent
from edge.commands import LogRing
from edge.config import ConfigError, EdgeConfig
from edge.systemd import setup_logging

log = logging.getLogger(__name__)


def run_agent(config: EdgeConfig, *, log_level: str = "INFO") -> int:
    """Run until SIGTERM or SIGINT; 0 on a clean stop, 2 on a config problem found late."""
    setup_logging(log_level)
    ring = LogRing()
    logging.getLogger().addHandler(ring)
    try:
        asyncio.run(_main(config, ring))
    except ConfigError as error:
        log.error("config error: %s", error)
        return 2
    return 0


async def _main(config: EdgeConfig, ring: LogRing) -> None:
    agent = Agent(config, log_ring=ring)
    task = asyncio.create_task(agent.run(), name="agent")
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    log.info("agent stopped")
