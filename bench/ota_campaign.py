"""OTA campaign at fleet scale: how long a campaign to 1,500 poles takes per wave plan, and how
fast the fleet serves release artifacts.

Real parts: `watchpost fleet serve` as its own process (PostgreSQL, Mosquitto), releases built
and signed by watchpost.ota.build and uploaded through the API, campaigns created through the
API. The 1,500 poles are faithful simulators (bench/_ota_nodes.py) behind one MQTT connection:
each takes its offer, downloads the manifest and the full artifact over HTTP from the fleet,
checks the signature and hashes as a node does, and reports every state; the install itself
(tested with real agents in tests/edge/ota and tests/ota) takes no time here, so the figure is
the fleet's and the network's part.

- Campaign: each wave plan upgrades every pole (targeted by its current version). Per wave, the
  time from the campaign's creation until the wave passed; the plan's total until the campaign
  completed. Reference: the same number of artifact downloads by the same pool of simulated
  poles, with no campaign, from the same server: the transfer's own floor.
- Serving: 8 clients downloading the artifact at once from the fleet's node-facing route, in
  MB/s. Reference: the same downloads of the same file from a bare server that answers every
  GET with the kernel's sendfile: loopback's ceiling on this machine.

The runner's pace (`[ota] tick_s`) is 0.5 s here (default 5 s): each wave waits up to a tick
to open, so the plan's figure includes its waves x tick.

    python bench/ota_campaign.py [--quick]
"""

from __future__ import annotations

import http.client
import json
import logging
import socketserver
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench._ota_nodes import SimulatedPoles
from bench._report import Figure, print_figures, print_header, quick_flag
from protocols import ota
from watchpost.broker import MosquittoBroker, free_port
from watchpost.fleetprocess import FleetProcess
from watchpost.ota import build
from watchpost.postgres import PostgresCluster

FULL_NODES, QUICK_NODES = 1500, 20
POLE_WORKERS = 16  # simulated poles downloading at once
SERVING_CLIENTS, SERVING_ROUNDS = 8, 8
PLANS: list[tuple[str, list[dict[str, Any]]]] = [
    ("canary 1, then 10 %, then 100 %", [{"nodes": 1}, {"percent": 10}, {"percent": 100}]),
    ("canary 15, then 100 %", [{"nodes": 15}, {"percent": 100}]),
]
WAIT_S = 900.0  # a guard against a stuck run, not a figure


def node_id(n: int) -> str:
    return f"pole-{n:05d}"


# --- the fleet, as a process --------------------------------------------------------------------


class FleetApi:
    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> Any:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Authorization": f"Bearer {self.token}"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            connection.request(method, f"/api/v1{path}", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {response.status} {payload[:500]!r}")
        return json.loads(payload)

    def json(self, method: str, path: str, body: Any) -> Any:
        return self.call(method, path, json.dumps(body).encode(), "application/json")

    def upload(self, built: build.BuiltRelease) -> dict[str, Any]:
        boundary = uuid.uuid4().hex
        parts = [("manifest", built.manifest_path), ("artifact", built.artifact_path)]
        body = b""
        for name, path in parts:
            body += (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                    f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                ).encode()
                + path.read_bytes()
                + b"\r\n"
            )
        body += f"--{boundary}--\r\n".encode()
        release: dict[str, Any] = self.call(
            "POST", "/ota/releases", body, f"multipart/form-data; boundary={boundary}"
        )
        return release


@contextmanager
def running_fleet(
    workdir: Path, broker: MosquittoBroker, database_url: str, key_file: Path
) -> Iterator[FleetApi]:
    port = free_port()
    settings = workdir / "fleet.toml"
    settings.write_text(
        f"""
[fleet]
host_id = "fleet-bench"
data_dir = "{workdir / "data"}"

[database]
url = "{database_url}"

[mqtt]
host = "{broker.host}"
port = {broker.port}

[api]
port = {port}

[ota]
trusted_keys = ["{key_file}"]
public_url = "http://127.0.0.1:{port}"
tick_s = 0.5
"""
    )
    with FleetProcess(settings, data_dir=workdir / "data", port=port, startup_timeout=120) as fleet:
        yield FleetApi(port, fleet.token)


def wait_until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        time.sleep(0.05)


# --- the figures --------------------------------------------------------------------------------


@dataclass
class PlanRun:
    name: str
    waves: list[tuple[int, float]]  # (wave size, seconds from creation until it passed)
    total_s: float
    committed: int
    downloaded_mb: float


def run_plan(
    api: FleetApi,
    poles: SimulatedPoles,
    *,
    name: str,
    waves: list[dict[str, Any]],
    release: dict[str, Any],
    from_version: str,
) -> PlanRun:
    before_committed = poles.counters.committed
    before_bytes = poles.counters.bytes_downloaded
    started = time.perf_counter()
    campaign = api.json(
        "POST",
        "/ota/campaigns",
        {"release_id": release["release_id"], "target": {"versions": [from_version]}, "waves": waves},
    )
    passed: dict[int, float] = {}
    while True:
        detail = api.call("GET", f"/ota/campaigns/{campaign['campaign_id']}")
        now = time.perf_counter() - started
        for wave in detail["waves"]:
            if wave["passed"] and wave["index"] not in passed:
                passed[wave["index"]] = now
        if detail["state"] == "completed":
            total = now
            break
        if detail["state"] in {"paused", "cancelled"} or now > WAIT_S:
            raise RuntimeError(f"campaign {detail['state']} ({detail['reason']}): {detail['by_state']}")
        time.sleep(0.05)
    sizes = {wave["index"]: wave["size"] for wave in detail["waves"]}
    return PlanRun(
        name=name,
        waves=[(sizes[index], passed.get(index, total)) for index in sorted(sizes)],
        total_s=total,
        committed=poles.counters.committed - before_committed,
        downloaded_mb=(poles.counters.bytes_downloaded - before_bytes) / 1e6,
    )


def download(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    size = 0
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status}")
        while chunk := response.read(256 * 1024):
            size += len(chunk)
    finally:
        connection.close()
    return size


def timed_downloads(port: int, path: str, *, count: int, clients: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        sizes = list(pool.map(lambda _n: download(port, path), range(count)))
    seconds = time.perf_counter() - started
    if len(set(sizes)) != 1:
        raise RuntimeError(f"downloads of {path} differ in size: {sorted(set(sizes))}")
    return seconds


@contextmanager
def sendfile_server(path: Path) -> Iterator[int]:
    """The ceiling: any GET answered with the file by the kernel (socket.sendfile), no framework."""
    size = path.stat().st_size

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while True:  # keep-alive: one response per request head
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = self.rfile.readline(8192)
                    if not line:
                        return
                    head += line
                self.wfile.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
                self.wfile.flush()
                with path.open("rb") as file:
                    self.connection.sendfile(file)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128  # the default 5 drops concurrent connects (1 s SYN retries)

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="sendfile-http", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    quick = quick_flag((__doc__ or "").splitlines()[0], argv)
    logging.basicConfig(level=logging.ERROR)
    nodes = QUICK_NODES if quick else FULL_NODES
    rounds = 2 if quick else SERVING_ROUNDS
    key = Ed25519PrivateKey.generate()
    trusted = {ota.key_id(key.public_key()): key.public_key()}
    with tempfile.TemporaryDirectory(prefix="ota-bench-") as scratch:
        workdir = Path(scratch)
        key_file = workdir / "release.pub"
        key_file.write_bytes(ota.public_key_pem(key.public_key()))
        versions = ["1.0.0"] + [f"1.{n + 1}.0" for n in range(len(PLANS))]
        built = [
            build.build_release(
                component="edge-agent",
                release=version,
                hardware=["raspberrypi"],
                files=build.edge_agent_files(version),
                keys=[key],
                out_dir=workdir / "releases" / version,
            )
            for version in versions[1:]
        ]
        artifact_mb = built[0].manifest.artifact.size / 1e6
        with MosquittoBroker() as broker, PostgresCluster() as postgres:
            url = postgres.create_database("ota_bench")
            with running_fleet(workdir, broker, url, key_file) as api:
                releases = [api.upload(b) for b in built]
                poles = SimulatedPoles(
                    host=broker.host,
                    port=broker.port,
                    node_ids=[node_id(n) for n in range(nodes)],
                    trusted=trusted,
                    agent_version=versions[0],
                    workers=POLE_WORKERS,
                )
                poles.start()
                try:
                    wait_until(
                        lambda: api.call("GET", f"/nodes?limit={nodes}")["items"].__len__() >= nodes,
                        f"{nodes} nodes in the fleet",
                    )
                    plans = [
                        run_plan(
                            api, poles, name=name, waves=waves, release=release, from_version=from_version
                        )
                        for (name, waves), release, from_version in zip(
                            PLANS, releases, versions, strict=False
                        )
                    ]
                finally:
                    poles.close()
                artifact_path = "/ota/v1/releases/{}/{}".format(
                    releases[0]["release_id"], releases[0]["artifact"]["name"]
                )
                # The transfer's floor: as many downloads as a plan made, same pool size, no campaign.
                floor_s = [timed_downloads(api.port, artifact_path, count=nodes, clients=POLE_WORKERS)]
                fleet_s = [
                    timed_downloads(
                        api.port, artifact_path, count=SERVING_CLIENTS * 4, clients=SERVING_CLIENTS
                    )
                    for _ in range(rounds)
                ]
            with sendfile_server(built[0].artifact_path) as port:
                ceiling_s = [
                    timed_downloads(
                        port,
                        "/" + built[0].artifact_path.name,
                        count=SERVING_CLIENTS * 4,
                        clients=SERVING_CLIENTS,
                    )
                    for _ in range(rounds)
                ]

    print_header(
        "OTA campaign: simulated poles, the fleet manager as a process, real Mosquitto and PostgreSQL",
        [
            ("poles", f"{nodes:,} simulated, {POLE_WORKERS} downloading at once, one MQTT connection"),
            ("artifact", f"edge-agent release, {artifact_mb:.2f} MB (full artifact; no delta)"),
            ("runner", "tick_s 0.5"),
        ],
        quick=quick,
    )
    for plan in plans:
        print(
            f"wave plan: {plan.name}  ({plan.committed:,} committed, {plan.downloaded_mb:,.0f} MB downloaded)"
        )
        opened = 0
        for index, (size, seconds) in enumerate(plan.waves, start=1):
            opened += size
            print(f"  wave {index}: {size:>5,} poles ({opened:>5,} in all)  passed at {seconds:7.2f} s")
        print(f"  campaign completed                          at {plan.total_s:7.2f} s")
        print(f"  reference: {nodes:,} downloads alone, {POLE_WORKERS} at once   {floor_s[0]:7.2f} s")
        print()
    print_figures(
        [
            Figure.from_runs(
                f"artifact serving, fleet node-facing route, {SERVING_CLIENTS} clients",
                fleet_s,
                "the same file by socket.sendfile, no HTTP framework",
                ceiling_s,
                amount=SERVING_CLIENTS * 4 * artifact_mb,
                unit="MB/s",
            )
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
