"""The fleet's API served by uvicorn in a thread of this process, on a free loopback port: for
the demo, the benchmarks and the tests (production runs `watchpost fleet serve`)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn


class ApiServer:
    """`with ApiServer(app) as server:` then call `http://127.0.0.1:{server.port}`."""

    def __init__(self, app: Any, *, port: int = 0, timeout: float = 30.0) -> None:
        self.app = app
        self.timeout = timeout
        self.port = port  # 0: a free one
        # Open event streams (/live) never end by themselves: a stop cuts them after a second.
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        # Made as uvicorn makes its own (IPPROTO_TCP): a plain socket() leaves Nagle's algorithm
        # on for the connections, and a reused keep-alive connection then waits ~40 ms per answer.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart takes its port back
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fleet-api", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self.timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fleet API did not start")
            time.sleep(0.01)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
