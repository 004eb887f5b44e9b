"""The agent as a process: logging, signals, exit status. `watchpost edge run` calls
run_agent; the boot selector (edge.ota.boot) execs `python -P -m edge.run --config …` from the
release directory it chose.

Exit status: 0 a clean stop (SIGTERM/SIGINT); 2 a config problem (systemd does not restart it:
RestartPreventExitStatus=2); EXIT_OTA_RESTART (75) the agent wants systemd to start the boot
selector again, after installing a release or after a release on trial failed its health
check (Restart=always restarts it; RestartSec= later the boot selector picks what runs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Final

from edge.agent import Agent
from edge.commands import LogRing
from edge.config import ConfigError, EdgeConfig, load_config
from edge.ota.errors import RestartRequested
from edge.systemd import setup_logging

log = logging.getLogger("edge.run")  # also when run as __main__ (python -m edge.run)

EXIT_CONFIG: Final = 2
EXIT_OTA_RESTART: Final = 75  # EX_TEMPFAIL: "try again", which is what systemd will do


def run_agent(config: EdgeConfig, *, log_level: str = "INFO") -> int:
    """Run until SIGTERM or SIGINT, or until an update needs a restart; the exit status."""
    setup_logging(log_level)
    ring = LogRing()
    logging.getLogger().addHandler(ring)
    try:
        return asyncio.run(_main(config, ring))
    except ConfigError as error:
        log.error("config error: %s", error)
        return EXIT_CONFIG


async def _main(config: EdgeConfig, ring: LogRing) -> int:
    agent = Agent(config, log_ring=ring)
    task = asyncio.create_task(agent.run(), name="agent")
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    code = 0
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    except* RestartRequested as group:
        log.warning("agent exits for a restart (%s): %s", EXIT_OTA_RESTART, group.exceptions[0])
        code = EXIT_OTA_RESTART
    else:
        log.info("agent stopped")
    return code


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m edge.run", description="The watchpost edge agent.")
    parser.add_argument("--config", required=True, help="the agent's TOML config")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m edge.run --config FILE [--log-level L]`: what the boot selector execs."""
    args = argument_parser().parse_args(argv)
    try:
        config = load_config(Path(args.config))
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    return run_agent(config, log_level=args.log_level)


if __name__ == "__main__":
    sys.exit(main())
