"""The `watchpost` command. Subcommands import their part lazily, so the edge install (no web
or database packages) runs its own subcommands without loading the fleet's."""

from __future__ import annotations

import sys

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
