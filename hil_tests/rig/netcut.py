"""The network between the pole and the centre, with a switch the harness holds: a TCP relay on
the lab host that the node connects to instead of the broker.

A cut is what a dug-up fibre looks like from both ends: nothing arrives and nothing is
refused. Bytes stay in the relay (and in the kernels' buffers), connections stay open, new ones
are accepted but get no answer; each side finds out only through its own timeouts (MQTT
keepalive). `restore()` lets the held bytes through, in order, and drops the connections
attempted during the cut, which over a real dead link would never have been made. `reset()`
is the other kind of outage, a router reboot: every connection is torn down at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

CHUNK = 64 * 1024


class NetworkCut:
    """`with NetworkCut(broker_host, broker_port) as net:` the node connects to `net.port`."""

    def __init__(self, upstream_host: str, upstream_port: int, *, listen_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listen_host = listen_host
        self.port = 0
        self.cuts = 0
        self.connections = 0  # accepted since start: each node reconnect shows here
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="netcut", daemon=True)
        self._open = asyncio.Event()  # set: bytes flow
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    # -- the switch (called from the test's thread)

    @property
    def is_cut(self) -> bool:
        return not self._open.is_set()

    def cut(self) -> None:
        self.cuts += 1
        self._call(self._open.clear)

    def restore(self) -> None:
        self._call(self._open.set)

    def reset(self) -> None:
        """Tear every connection down now (an RST to both ends), as a rebooting router does."""
        self._call(self._reset_all)

    # -- life

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- inside the relay's loop

    def _call(self, action: Callable[[], None]) -> None:
        """Run `action` in the relay's loop and wait until it has run."""
        done = threading.Event()

        def run() -> None:
            action()
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(10)

    async def _listen(self) -> None:
        self._open.set()
        self._server = await asyncio.start_server(self._accept, self.listen_host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, node_reader: asyncio.StreamReader, node_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(node_writer)
        try:
            if self.is_cut:
                # Over a dead link this handshake would never have completed: the node has given
                # up on it by the time the link is back. Held, then dropped at the restore, so
                # its stale CONNECT never reaches the broker.
                await self._open.wait()
                return
            try:
                broker_reader, broker_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                return  # the broker is down: the node sees its connection close
            self._writers.add(broker_writer)
            try:
                await asyncio.gather(
                    self._pipe(node_reader, broker_writer), self._pipe(broker_reader, node_writer)
                )
            finally:
                self._writers.discard(broker_writer)
                _abort(broker_writer)
        finally:
            self._writers.discard(node_writer)
            _abort(node_writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                await self._open.wait()  # held during a cut, delivered in order after it
                writer.write(data)
                await writer.drain()
        # One side closed: close the other, as a connection through a NAT would end.
        _abort(writer)

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            _abort(writer)

    async def _shutdown(self) -> None:
        self._open.set()
        if self._server is not None:
            self._server.close()
        self._reset_all()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()
