"""The camera probe (edge.cameras.probe) against the fake camera (edge.cameras.fake) on loopback
ports: answers, credentials wanted, silence, a closed port, something that is not RTSP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from edge.cameras import rtsp
from edge.cameras.config import CameraConfig, ProbeKind
from edge.cameras.fake import FakeCamera
from edge.cameras.probe import ProbeResult, probe, probe_all
from protocols.messages import CameraHealth
from tests.edge.cameras.conftest import run

SHORT = 0.2  # seconds; only the silent camera waits this long


def camera(port: int, *, kind: ProbeKind = "rtsp", camera_id: str = "cam-1") -> CameraConfig:
    return CameraConfig(camera_id=camera_id, name="Corner north", host="127.0.0.1", port=port, probe=kind)


def ticks(*values: float) -> Iterator[float]:
    return iter(values)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens on it now


def test_a_camera_answering_options_is_reachable() -> None:
    async def scenario() -> tuple[ProbeResult, list[bytes], int]:
        clock = ticks(10.0, 10.0125)
        async with FakeCamera() as fake:
            result = await probe(
                camera(fake.port), cseq=7, clock=lambda: 1_734_000_000_000, monotonic=lambda: next(clock)
            )
            return result, fake.requests, fake.port

    result, requests, port = run(scenario())
    assert result == ProbeResult(
        camera_id="cam-1",
        reachable=True,
        latency_ms=12.5,
        detail="RTSP 200 OK",
        probed_at_ms=1_734_000_000_000,
    )
    assert requests == [
        b"OPTIONS rtsp://127.0.0.1:%d/ RTSP/1.0\r\nCSeq: 7\r\nUser-Agent: watchpost-edge\r\n\r\n" % port
    ]
    assert result.health() == CameraHealth(camera_id="cam-1", reachable=True)


def test_a_camera_wanting_credentials_is_still_reachable() -> None:
    async def scenario() -> ProbeResult:
        async with FakeCamera(status=401) as fake:
            return await probe(camera(fake.port))

    result = run(scenario())
    assert (result.reachable, result.detail) == (True, "RTSP 401 Unauthorized")


def test_a_camera_in_trouble_is_reachable_and_says_its_status() -> None:
    async def scenario() -> ProbeResult:
        async with FakeCamera(status=503) as fake:
            return await probe(camera(fake.port))

    result = run(scenario())
    assert (result.reachable, result.detail) == (True, "RTSP 503 Service Unavailable")


def test_a_silent_camera_times_out() -> None:
    async def scenario() -> tuple[ProbeResult, int]:
        async with FakeCamera(silent=True) as fake:
            return await probe(camera(fake.port), timeout_s=SHORT), fake.connections

    result, connections = run(scenario())
    assert connections == 1
    assert (result.reachable, result.latency_ms) == (False, None)
    assert result.detail == "timed out after 0.2 s (connected, no RTSP reply)"


def test_a_closed_port_is_refused() -> None:
    result = run(probe(camera(closed_port())))
    assert (result.reachable, result.latency_ms, result.detail) == (False, None, "connection refused")
    assert result.health() == CameraHealth(camera_id="cam-1", reachable=False)


def test_a_closed_port_is_refused_for_a_tcp_probe_too() -> None:
    result = run(probe(camera(closed_port(), kind="tcp")))
    assert (result.reachable, result.detail) == (False, "connection refused")


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "not RTSP: got 'HTTP/1.1 400 Bad Request'"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "not RTSP: got 'SSH-2.0-OpenSSH_9.2'"),
        (b"\x00\xffRTSP/1.0 200 OK\r\n", "not RTSP: got '\\x00\\xffRTSP/1.0 200 OK'"),
        (b"RTSP/1.0 2000 OK\r\n", "not RTSP: got 'RTSP/1.0 2000 OK'"),
        (b"x" * 2000 + b"\r\n", "not RTSP: got a first line over 1024 bytes"),
    ],
    ids=["http", "ssh", "noise", "bad-code", "long-line"],
)
def test_something_that_is_not_rtsp_is_not_reachable(reply: bytes, detail: str) -> None:
    async def scenario() -> ProbeResult:
        async with FakeCamera(raw_reply=reply) as fake:
            return await probe(camera(fake.port), timeout_s=5.0)

    result = run(scenario())
    assert (result.reachable, result.latency_ms, result.detail) == (False, None, detail)


def test_a_camera_hanging_up_without_a_word_is_not_reachable() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
        await writer.wait_closed()

    async def scenario() -> ProbeResult:
        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        async with server:
            return await probe(camera(server.sockets[0].getsockname()[1]), timeout_s=5.0)

    result = run(scenario())
    assert (result.reachable, result.detail) in {
        (False, "connection closed without an RTSP reply"),
        (False, "connection reset by the camera before it answered"),
    }


def test_a_tcp_probe_only_connects() -> None:
    async def scenario() -> tuple[ProbeResult, list[bytes], int]:
        async with FakeCamera() as fake:
            result = await probe(camera(fake.port, kind="tcp"), timeout_s=5.0)
            return result, fake.requests, fake.port

    result, requests, port = run(scenario())
    assert (result.reachable, result.detail) == (True, f"TCP port {port} open")
    assert requests == []  # it asked nothing: the fake answers OPTIONS, and none came


def test_an_unresolvable_host_says_so() -> None:
    config = CameraConfig(camera_id="cam-1", name="x", host="cam-1.invalid", probe="tcp")
    # .invalid never resolves (RFC 6761); the long timeout leaves a slow resolver time to say so.
    result = run(probe(config, timeout_s=30.0))
    assert not result.reachable
    assert result.detail.startswith("cannot resolve host 'cam-1.invalid': ")


def test_probe_all_probes_every_camera_at_once_in_config_order() -> None:
    async def scenario() -> tuple[list[ProbeResult], int]:
        async with FakeCamera() as up, FakeCamera(silent=True) as silent, FakeCamera(status=401) as locked:
            cameras = [
                camera(silent.port, camera_id="cam-silent"),
                camera(up.port, camera_id="cam-up"),
                camera(closed_port(), camera_id="cam-gone"),
                camera(locked.port, camera_id="cam-locked"),
                camera(silent.port, camera_id="cam-silent-tcp", kind="tcp"),
            ]
            return await probe_all(cameras, timeout_s=SHORT), silent.port

    results, silent_port = run(scenario())
    assert [(r.camera_id, r.reachable, r.detail) for r in results] == [
        ("cam-silent", False, "timed out after 0.2 s (connected, no RTSP reply)"),
        ("cam-up", True, "RTSP 200 OK"),
        ("cam-gone", False, "connection refused"),
        ("cam-locked", True, "RTSP 401 Unauthorized"),
        ("cam-silent-tcp", True, f"TCP port {silent_port} open"),
    ]


def test_a_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"^timeout_s 0 is not allowed: use a positive number of seconds$"):
        run(probe(camera(554), timeout_s=0))


def test_the_fake_camera_answers_each_request_with_its_cseq() -> None:
    async def scenario() -> list[bytes]:
        async with FakeCamera() as fake:
            reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
            answers = []
            for cseq in (1, 2):
                writer.write(rtsp.options_request("127.0.0.1", fake.port, cseq))
                answers.append(await reader.readuntil(b"\r\n\r\n"))
            writer.close()
            await writer.wait_closed()
            return answers

    first, second = run(scenario())
    assert first.startswith(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE")
    assert second.startswith(b"RTSP/1.0 200 OK\r\nCSeq: 2\r\n")


def test_a_fake_camera_cannot_be_silent_and_talk() -> None:
    with pytest.raises(ValueError, match="not both"):
        FakeCamera(silent=True, raw_reply=b"x")


# --- the RTSP bits, without sockets -----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        (b"RTSP/1.0 200 OK\r\n", rtsp.StatusLine("1.0", 200, "OK")),
        (b"RTSP/1.0 401 Unauthorized\n", rtsp.StatusLine("1.0", 401, "Unauthorized")),
        (b"RTSP/2.0 454 Session Not Found\r\n", rtsp.StatusLine("2.0", 454, "Session Not Found")),
        (b"RTSP/1.0 200\r\n", rtsp.StatusLine("1.0", 200, "")),
        (b"HTTP/1.0 200 OK\r\n", None),
        (b"RTSP/1.0 099 Odd\r\n", None),
        (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n", None),
        (b"", None),
    ],
)
def test_status_lines(line: bytes, parsed: rtsp.StatusLine | None) -> None:
    assert rtsp.parse_status_line(line) == parsed


def test_an_ipv6_camera_is_addressed_in_brackets() -> None:
    assert rtsp.options_request("fd00::10", 554, 3).startswith(
        b"OPTIONS rtsp://[fd00::10]:554/ RTSP/1.0\r\nCSeq: 3\r\n"
    )
