"""The boot selector, systemd's ExecStart (docs/adr/0009):

    python -P -m edge.ota.boot --root /opt/watchpost -- --config /etc/watchpost/edge.toml

It runs from `<root>/committed` (PYTHONPATH in the unit), so a broken release cannot break its
own rollback. It counts the boots of a release on trial, rolls `current` back to `committed`
past `ota.max_trial_boots` (outcome "did-not-start"), then execs `python -P -m edge.run <agent
args>` with PYTHONPATH set to the release `current` names: same PID, so Type=notify and the
watchdog see the agent. The decision is edge.ota.state.plan_boot; this is its shell.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from edge.ota.files import StatePaths, read_struct, remove, write_struct
from edge.ota.releases import ReleaseStore
from edge.ota.state import BootPlan, Outcome, Trial, plan_boot

log = logging.getLogger("edge.ota.boot")


def select(root: Path, state_dir: Path, *, max_trial_boots: int) -> BootPlan:
    """Decide and apply, in the order that a power cut at any point leaves recoverable: the
    outcome before the switch back, the switch before the trial file goes."""
    store = ReleaseStore(root)
    paths = StatePaths(state_dir)
    plan = plan_boot(
        current=store.current(),
        committed=store.committed(),
        trial=read_struct(paths.trial, Trial),
        outcome=read_struct(paths.outcome, Outcome),
        max_trial_boots=max_trial_boots,
    )
    if plan.write_outcome is not None:
        write_struct(paths.outcome, plan.write_outcome)
    if plan.switch_current_to is not None:
        store.switch("current", plan.switch_current_to)
    if plan.write_trial is not None:
        write_struct(paths.trial, plan.write_trial)
    if plan.delete_trial:
        remove(paths.trial)
    return plan


def agent_command(
    root: Path, agent_args: Sequence[str], environ: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The agent of the release `current` names: argv and environment for exec."""
    env = dict(environ)
    current = root / "current"
    if current.is_dir():
        release_dir = current.resolve()  # the real directory: a later switch does not move it
        env["PYTHONPATH"] = str(release_dir)
        env["WATCHPOST_RELEASE_DIR"] = str(release_dir)
    else:
        log.warning("no release at %s: running the agent installed beside this interpreter", current)
        env.pop("WATCHPOST_RELEASE_DIR", None)
    # -P: the working directory is not on sys.path; only the release's code is imported.
    return [sys.executable, "-P", "-m", "edge.run", *agent_args], env


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m edge.ota.boot", description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path, help="ota.root: releases/, current, committed")
    parser.add_argument("agent_args", nargs=argparse.REMAINDER, help="-- then the agent's arguments")
    args = parser.parse_args(argv)
    agent_args = list(args.agent_args)
    if agent_args[:1] == ["--"]:
        agent_args = agent_args[1:]
    from edge.systemd import setup_logging  # noqa: PLC0415  # after argparse: --help stays quiet

    setup_logging("INFO")
    try:
        choose(args.root, agent_args)
    except Exception:
        # Whatever went wrong here, the agent of `current` still has to run.
        log.exception("boot selector: could not decide; running what `current` names")
    command, env = agent_command(args.root, agent_args, os.environ)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, env)


def choose(root: Path, agent_args: list[str]) -> None:
    # Only the config is read here; the agent's own modules are not imported (nor their
    # dependencies): a slow or broken import must not come before the decision.
    from edge.config import ConfigError, load_config  # noqa: PLC0415

    finder = argparse.ArgumentParser(add_help=False)
    finder.add_argument("--config", required=True)
    known, _ = finder.parse_known_args(agent_args)
    try:
        config = load_config(Path(known.config))
    except ConfigError as error:
        log.error("boot selector: %s; the agent will say so too", error)
        return
    plan = select(root, config.node.state_dir, max_trial_boots=config.ota.max_trial_boots)
    (log.warning if plan.switch_current_to else log.info)("boot selector: %s", plan.why)


if __name__ == "__main__":
    main()
