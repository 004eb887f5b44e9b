"""Simulated poles for OTA campaigns at fleet scale: many nodes behind one MQTT connection,
each doing what an edge agent does with an update offer, minus the installing itself.

A node is born (NodeBirth), takes its `OtaOffer`, downloads the manifest from the fleet over
HTTP and checks it as a node does (its SHA-256 against the offer, the Ed25519 signature against
the pinned keys, the hardware), downloads the artifact (checking size and SHA-256 as it
streams), reports every state of protocols.messages.OtaState, "restarts" (death, then a birth
with the new agent_version) and commits, or rolls back when `rolls_back(node)` says so.
The real edge install (edge/ota) is tested with real agents; this is for the 1,500-node figures,
where 1,500 Pi processes do not fit on one machine.
"""

from __future__ import annotations

import hashlib
import http.client
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion

from protocols import messages as m
from protocols import ota
from protocols.topics import Kind, node_topic

CHUNK = 256 * 1024


@dataclass
class PoleCounters:
    offers: int = 0
    committed: int = 0
    rolled_back: int = 0
    failed: int = 0
    bytes_downloaded: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class _Node:
    node_id: str
    bd_seq: int = 0
    seq: int = 0
    agent_version: str = "1.0.0"
    busy: bool = False


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class SimulatedPoles:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        node_ids: list[str],
        trusted: dict[str, Ed25519PublicKey],
        hardware: str = "raspberrypi",
        agent_version: str = "1.0.0",
        workers: int = 16,
        rolls_back: Callable[[str], bool] = lambda _node: False,
    ) -> None:
        self.host, self.port = host, port
        self.trusted = trusted
        self.hardware = hardware
        self.rolls_back = rolls_back
        self.nodes = {n: _Node(n, agent_version=agent_version) for n in node_ids}
        self.counters = PoleCounters()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pole")
        self._client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self._client.max_queued_messages_set(0)
        self._client.on_message = self._on_message

    # --- MQTT ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._client.connect(self.host, self.port)
        self._client.loop_start()
        self._client.subscribe("watchpost/v1/node/+/down/ota-offer", qos=1)
        for node in self.nodes.values():
            self._birth(node)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.disconnect()
        self._client.loop_stop()

    def _publish(self, topic: str, message: m.Message) -> None:
        self._client.publish(topic, m.encode(message), qos=1).wait_for_publish(30)

    def _birth(self, node: _Node) -> None:
        with self._lock:
            node.seq = 0
            birth = m.NodeBirth(
                ts=wall_ms(),
                seq=0,
                bd_seq=node.bd_seq,
                site_id=f"site-{node.node_id}",
                hardware=self.hardware,
                agent_version=node.agent_version,
            )
        self._publish(node_topic(node.node_id, Kind.BIRTH), birth)

    def _report(self, node: _Node, offer: m.OtaOffer, state: m.OtaState, **extra: object) -> None:
        with self._lock:
            node.seq += 1
            progress = m.OtaProgress(
                ts=wall_ms(),
                seq=node.seq,
                campaign_id=offer.campaign_id,
                release=offer.release,
                state=state,
                **extra,  # type: ignore[arg-type]
            )
        self._publish(node_topic(node.node_id, Kind.OTA_PROGRESS), progress)

    def _on_message(self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        node_id = message.topic.split("/")[3]
        node = self.nodes.get(node_id)
        offer = m.decode(Kind.OTA_OFFER, bytes(message.payload))
        if node is None or not isinstance(offer, m.OtaOffer):
            return
        with self._lock:
            if node.busy:
                return
            node.busy = True
            self.counters.offers += 1
        self._pool.submit(self._update, node, offer)

    # --- one node's update --------------------------------------------------------------------

    def _fail(self, node: _Node, offer: m.OtaOffer, reason: str, detail: str) -> None:
        with self._lock:
            self.counters.failed += 1
            self.counters.reasons[reason] = self.counters.reasons.get(reason, 0) + 1
        self._report(node, offer, "failed", reason=reason, detail=detail)

    def _update(self, node: _Node, offer: m.OtaOffer) -> None:
        try:
            self._run(node, offer)
        except (OSError, http.client.HTTPException) as error:
            self._fail(node, offer, "download-failed", str(error))
        finally:
            with self._lock:
                node.busy = False

    def _run(self, node: _Node, offer: m.OtaOffer) -> None:
        self._report(node, offer, "notified")
        document = self._get(offer.manifest_url, limit=ota.MAX_DOCUMENT_BYTES)
        if hashlib.sha256(document).hexdigest() != offer.manifest_sha256:
            return self._fail(node, offer, "hash-mismatch", "the manifest is not the one offered")
        manifest = ota.verify(document, self.trusted)
        if not isinstance(manifest, ota.Manifest):
            return self._fail(node, offer, manifest.reason, str(manifest))
        if self.hardware not in manifest.hardware:
            return self._fail(node, offer, "wrong-hardware", f"for {manifest.hardware}")
        self._report(node, offer, "downloading", progress=0.0)
        url = urllib.parse.urljoin(offer.manifest_url, manifest.artifact.path)
        digest = hashlib.sha256()
        size = self._stream(url, digest, limit=manifest.artifact.size)
        if size != manifest.artifact.size or digest.hexdigest() != manifest.artifact.sha256:
            return self._fail(node, offer, "hash-mismatch", f"artifact of {size} bytes does not match")
        self._report(node, offer, "downloaded", progress=1.0)
        self._report(node, offer, "verified")
        self._report(node, offer, "installing")
        self._report(node, offer, "restarting")
        self._publish(node_topic(node.node_id, Kind.DEATH), m.NodeDeath(ts=wall_ms(), bd_seq=node.bd_seq))
        rolled_back = self.rolls_back(node.node_id)
        with self._lock:
            node.bd_seq = (node.bd_seq + 1) % 256
            if not rolled_back:
                node.agent_version = manifest.release
        self._birth(node)
        if rolled_back:
            with self._lock:
                self.counters.rolled_back += 1
            self._report(
                node, offer, "rolled-back", reason="health-check", detail="uplink not connected in time"
            )
            return None
        self._report(node, offer, "health-check")
        with self._lock:
            self.counters.committed += 1
        self._report(node, offer, "committed")
        return None

    # --- HTTP ---------------------------------------------------------------------------------

    def _connection(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=30)
        return connection, parts.path + (f"?{parts.query}" if parts.query else "")

    def _get(self, url: str, *, limit: int) -> bytes:
        connection, path = self._connection(url)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            if response.status != 200:
                raise http.client.HTTPException(f"GET {url}: HTTP {response.status}")
            body = response.read(limit + 1)
        finally:
            connection.close()
        with self._lock:
            self.counters.bytes_downloaded += len(body)
        return body

    def _stream(self, url: str, digest: hashlib._Hash, *, limit: int) -> int:
        connection, path = self._connection(url)
        size = 0
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            if response.status != 200:
                raise http.client.HTTPException(f"GET {url}: HTTP {response.status}")
            while size <= limit:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
        finally:
            connection.close()
        with self._lock:
            self.counters.bytes_downloaded += size
        return size
