"""Is each camera there? One TCP connect, or an RTSP OPTIONS and its status line (edge.cameras.rtsp),
per camera, with a timeout and a reason when it is not. The agent runs `probe_all` on its
telemetry tick and reports `ProbeResult.health()` in the node's readings."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from protocols.messages import CameraHealth

from . import rtsp
from .clock import epoch_ms
from .config import CameraConfig

DEFAULT_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeResult:
    """`detail` says what happened in a technician's words: "RTSP 200 OK", "connection
    refused", "timed out after 2.0 s (connected, no RTSP reply)". `latency_ms` is from the
    connect to the answer, None when the camera is not reachable."""

    camera_id: str
    reachable: bool
    latency_ms: float | None
    detail: str
    probed_at_ms: int

    def health(self) -> CameraHealth:
        return CameraHealth(camera_id=self.camera_id, reachable=self.reachable)


async def probe(
    camera: CameraConfig,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    cseq: int = 1,
    clock: Callable[[], int] = epoch_ms,
    monotonic: Callable[[], float] = time.monotonic,
) -> ProbeResult:
    """Probe one camera as its config says (`camera.probe`). Never raises for anything the
    network or the camera does: that is a result with `reachable=False` and a reason."""
    if not timeout_s > 0:
        raise ValueError(f"timeout_s {timeout_s} is not allowed: use a positive number of seconds")
    probed_at_ms = clock()
    started = monotonic()
    reachable, detail = await _probe(camera, timeout_s, cseq)
    latency_ms = round((monotonic() - started) * 1000, 1) if reachable else None
    return ProbeResult(
        camera_id=camera.camera_id,
        reachable=reachable,
        latency_ms=latency_ms,
        detail=detail,
        probed_at_ms=probed_at_ms,
    )


async def probe_all(
    cameras: Sequence[CameraConfig],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    clock: Callable[[], int] = epoch_ms,
    monotonic: Callable[[], float] = time.monotonic,
) -> list[ProbeResult]:
    """Every camera at once, so a dead camera costs one timeout, not one per camera; the
    results are in the order of `cameras`."""
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(
                probe(camera, timeout_s=timeout_s, clock=clock, monotonic=monotonic),
                name=f"probe-{camera.camera_id}",
            )
            for camera in cameras
        ]
    return [task.result() for task in tasks]


async def _probe(camera: CameraConfig, timeout_s: float, cseq: int) -> tuple[bool, str]:
    writer: asyncio.StreamWriter | None = None
    phase = "no TCP connection"
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(
                camera.host, camera.port, limit=rtsp.MAX_STATUS_LINE
            )
            if camera.probe == "tcp":
                return True, f"TCP port {camera.port} open"
            phase = "connected, no RTSP reply"
            writer.write(rtsp.options_request(camera.host, camera.port, cseq))
            await writer.drain()
            line = await reader.readline()
    except TimeoutError:
        return False, f"timed out after {float(timeout_s)} s ({phase})"
    except ConnectionRefusedError:
        return False, "connection refused"
    except socket.gaierror as exc:
        return False, f"cannot resolve host {camera.host!r}: {exc.strerror}"
    except ValueError:
        # StreamReader.readline: no line end within the limit.
        return False, f"not RTSP: got a first line over {rtsp.MAX_STATUS_LINE} bytes"
    except ConnectionResetError:
        return False, "connection reset by the camera before it answered"
    except OSError as exc:
        return False, f"cannot connect: {exc.strerror or exc}"
    finally:
        if writer is not None:
            writer.close()
            # Bounded: a close waits for the request to leave, and a wedged camera may not take it.
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await writer.wait_closed()
    if not line:
        return False, "connection closed without an RTSP reply"
    status = rtsp.parse_status_line(line)
    if status is None:
        shown = _printable(line.rstrip(b"\r\n")[:60])
        return False, f"not RTSP: got '{shown}'"
    # Any RTSP answer, 401 included, means a camera is there and its server is up; the
    # status tells the technician the rest (credentials, a wrong path, an overloaded camera).
    return True, str(status)


def _printable(data: bytes) -> str:
    # Whatever answered may send anything; the detail goes into logs and the diagnostics page.
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in data)
