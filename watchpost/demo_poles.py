"""Simulated poles for `watchpost demo`: a city's worth of edge nodes in one process, each
speaking the real MQTT contract (protocols.messages, protocols.topics) the way an edge agent
does, so the fleet manager cannot tell them from real poles.

Two layers, as in the rest of the project:

- `PoleSession` is one pole's side of the contract with no I/O: its `bd_seq` (advanced for
  every connection, the will carrying the same one as the birth), its per-session `seq`
  (0 in the birth, +1 per QoS 1 message, repeated by telemetry), its answers to the fleet's
  commands (a rebirth among them) and to an operator's acknowledgement (the lamp). It is fed
  the time, so the tests run it without a broker or a clock.
- `SimulatedPoles` is the shell: one paho client per pole (each needs its own will), a thread
  that sends telemetry on an interval, and the hands the demo uses at a pole (press the bell,
  make a camera stop answering).

`city(n)` says who the poles are: ids, sites with names and districts, cameras.
The demo's first pole is not simulated: it is the real firmware and edge agent (watchpost.demo_live).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.version import AGENT_VERSION
from protocols import messages as m
from protocols.errors import ContractError
from protocols.session import next_bd_seq
from protocols.topics import ROUTES, Kind, Topic, node_subscriptions, node_topic, parse_topic

log = logging.getLogger(__name__)

FIRMWARE_VERSION = "0.1.0"  # what the pole controller firmware of this release reports
HARDWARE = "raspberrypi"
TELEMETRY_S = 10.0  # how often each simulated pole reports its readings
# What a simulated pole does when the fleet asks; anything else is an unknown command to it.
CAPABILITIES = ("lamp", "ping", "rebirth", "self-test")
_REMEMBERED_COMMANDS = 64


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


# --- who the poles are --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoleSpec:
    """One pole of the city: its node, its site (as the city's inventory lists it) and what
    hangs on it."""

    node_id: str
    site_id: str
    site_name: str
    district: str
    latitude: float
    longitude: float
    purpose: str  # crime-prevention, parking or flood-watch: the site's tag
    cameras: tuple[m.CameraInfo, ...]
    bells: tuple[str, ...] = ("bell-1",)
    controller_link: Literal["serial", "gpio"] = "serial"  # a pole controller, or the Pi's pins only


# Districts of the demo city (Seoul's gu), the streets in each, and the district's centre.
_DISTRICTS: tuple[tuple[str, tuple[str, ...], float, float], ...] = (
    ("Jung-gu", ("Sejong-daero", "Eulji-ro", "Toegye-ro", "Namdaemun-ro"), 37.5641, 126.9979),
    ("Jongno-gu", ("Jong-ro", "Yulgok-ro", "Samil-daero", "Changgyeonggung-ro"), 37.5735, 126.9790),
    ("Mapo-gu", ("Yanghwa-ro", "World Cup-ro", "Mapo-daero", "Hongik-ro"), 37.5663, 126.9019),
    ("Yongsan-gu", ("Itaewon-ro", "Hangang-daero", "Wonhyo-ro", "Noksapyeong-daero"), 37.5326, 126.9905),
    ("Seongdong-gu", ("Wangsimni-ro", "Seongsu-ro", "Ttukseom-ro", "Majang-ro"), 37.5634, 127.0369),
)
_PLACES = (
    "crossing",
    "bus stop",
    "underpass",
    "park entrance",
    "school zone",
    "market gate",
    "riverside path",
    "public car park",
)
_PURPOSE_OF_PLACE = {
    "riverside path": "flood-watch",
    "underpass": "flood-watch",
    "public car park": "parking",
}
_VIEWS = ("north approach", "south approach", "crossing", "footpath")
_MODELS = ("bullet-4mp", "dome-5mp", "ptz-2mp")


def city(count: int) -> list[PoleSpec]:
    """`count` poles, pole-0001 first, spread over the districts; the same every time."""
    if not 1 <= count <= 9999:
        raise ValueError(f"{count} poles: use 1 to 9999")
    poles = []
    for n in range(1, count + 1):
        district, streets, lat, lon = _DISTRICTS[(n - 1) % len(_DISTRICTS)]
        street = streets[(n - 1) // len(_DISTRICTS) % len(streets)]
        place = _PLACES[(n * 3) % len(_PLACES)]
        number = 10 + (n * 37) % 190
        cameras = tuple(
            m.CameraInfo(
                camera_id=f"cam-{n:04d}-{k + 1}",
                name=_VIEWS[(n + k) % len(_VIEWS)].capitalize(),
                model=_MODELS[(n + k) % len(_MODELS)],
            )
            for k in range(1 + n % 3)
        )
        poles.append(
            PoleSpec(
                node_id=f"pole-{n:04d}",
                site_id=f"site-{n:04d}",
                site_name=f"{street} {number}, {place}",
                district=district,
                latitude=round(lat + ((n * 7) % 11 - 5) * 0.0013, 5),
                longitude=round(lon + ((n * 5) % 13 - 6) * 0.0017, 5),
                purpose=_PURPOSE_OF_PLACE.get(place, "crime-prevention"),
                cameras=cameras,
                # Most poles carry an emergency bell; every fourth has cameras only.
                bells=() if n % 4 == 0 else ("bell-1",),
                controller_link="gpio" if n % 5 == 3 else "serial",
            )
        )
    return poles


def camera_purpose(pole: PoleSpec, camera: m.CameraInfo) -> str:
    """What the city put a camera up for (fleet.inventory.models.CameraPurpose): a camera on a
    crossing watches the traffic; the others serve the site's purpose."""
    return "traffic" if camera.name == "Crossing" else pole.purpose


def sites_csv(poles: Sequence[PoleSpec]) -> str:
    """The city's site list for the fleet's CSV import (fleet.inventory.csv_import)."""
    rows = ["site_id,name,address,district,pole_type,latitude,longitude,has_bell,tags"]
    for pole in poles:
        bell = "yes" if pole.bells else "no"
        address = f"{pole.site_name.split(',')[0]}, {pole.district}, Seoul"
        rows.append(
            f'{pole.site_id},"{pole.site_name}","{address}",{pole.district},steel 6 m,'
            f"{pole.latitude},{pole.longitude},{bell},{pole.purpose}"
        )
    return "\n".join(rows) + "\n"


# --- one pole's side of the contract ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What a pole does about one message from the fleet: messages to send back, in order, and
    whether an operator's acknowledgement lit its lamp."""

    send: list[m.Message] = field(default_factory=list)
    lamp: m.AlarmAck | None = None
    refused: ContractError | None = None  # the payload broke the contract: nothing done


class PoleSession:
    """One simulated pole's session state: what it sends next and how it answers the fleet."""

    def __init__(self, spec: PoleSpec, *, started_ms: int, rng: random.Random | None = None) -> None:
        self.spec = spec
        self.started_ms = started_ms
        self.rng = rng or random.Random(spec.node_id)
        self.bd_seq: int | None = None  # of the current (or last) connection
        self.seq = 0
        self.online = False
        self.hosts: dict[str, bool] = {}  # fleet host -> online, from its retained host state
        self.cameras_up = {camera.camera_id: True for camera in spec.cameras}
        self.lamp_for: str | None = None  # the alarm whose acknowledgement lit the lamp
        self._answered: OrderedDict[str, m.CommandResult] = OrderedDict()
        # Readings that drift slowly, as a real pole's do.
        self._cpu_c = 44.0 + self.rng.uniform(-4, 6)
        self._cabinet_c = 24.0 + self.rng.uniform(-3, 5)
        self._supply_v = 12.2 + self.rng.uniform(-0.2, 0.2)
        self._disk_free = int(self.rng.uniform(18, 26) * 1e9)

    # -- the connection

    def connecting(self, now_ms: int) -> m.NodeDeath:
        """A new connection: the next `bd_seq`, and the death to register as its will."""
        self.bd_seq = next_bd_seq(self.bd_seq)
        self.online = False
        return m.NodeDeath(ts=now_ms, bd_seq=self.bd_seq)

    def connected(self, now_ms: int) -> m.NodeBirth:
        """The broker took the connection: the session starts with a birth (seq 0)."""
        self.online = True
        return self.birth(now_ms)

    def lost(self) -> None:
        self.online = False

    def birth(self, now_ms: int) -> m.NodeBirth:
        if self.bd_seq is None:
            raise RuntimeError(f"{self.spec.node_id}: a birth before any connection")
        self.seq = 0
        controller = (
            m.ControllerInfo(link="gpio")
            if self.spec.controller_link == "gpio"
            else m.ControllerInfo(link="serial", firmware_version=FIRMWARE_VERSION, reset_cause="power-on")
        )
        return m.NodeBirth(
            ts=now_ms,
            seq=0,
            bd_seq=self.bd_seq,
            site_id=self.spec.site_id,
            hardware=HARDWARE,
            agent_version=AGENT_VERSION,
            controller=controller,
            cameras=list(self.spec.cameras),
            bells=list(self.spec.bells),
            capabilities=list(CAPABILITIES),
        )

    def death(self, now_ms: int) -> m.NodeDeath:
        """Said by the pole itself when it stops (a clean disconnect sends no will)."""
        self.online = False
        return m.NodeDeath(ts=now_ms, bd_seq=self.bd_seq or 0)

    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) % 2**32
        return self.seq

    # -- what the pole sends

    def may_send(self) -> bool:
        """Records wait while every fleet host that announced itself says it is offline (the
        broker would hold them for nobody); alarms do not wait (edge.uplink.session)."""
        return self.online and (not self.hosts or any(self.hosts.values()))

    def telemetry(self, now_ms: int) -> m.Telemetry:
        """Readings at QoS 0: they repeat the session's current `seq` without advancing it."""
        self._cpu_c = min(80.0, max(35.0, self._cpu_c + self.rng.uniform(-0.8, 0.8)))
        self._cabinet_c = min(55.0, max(5.0, self._cabinet_c + self.rng.uniform(-0.3, 0.3)))
        self._supply_v = min(12.8, max(11.6, self._supply_v + self.rng.uniform(-0.05, 0.05)))
        self._disk_free = max(0, self._disk_free - int(self.rng.uniform(0, 4e6)))
        serial = self.spec.controller_link == "serial"
        cameras = [
            m.CameraHealth(
                camera_id=camera_id,
                reachable=up,
                fps=20.0 if up else None,
                bitrate_kbps=round(self.rng.uniform(5500, 7500), 1) if up else None,
            )
            for camera_id, up in self.cameras_up.items()
        ]
        return m.Telemetry(
            ts=now_ms,
            seq=self.seq,
            readings=m.Readings(
                uptime_s=max(0, (now_ms - self.started_ms) // 1000),
                cpu_temp_c=round(self._cpu_c, 1),
                throttled=False,
                mem_used_pct=round(self.rng.uniform(28, 36), 1),
                disk_free_bytes=self._disk_free,
                clock_synced=True,
                controller_temp_c=round(self._cabinet_c, 1) if serial else None,
                supply_v=round(self._supply_v, 2) if serial else None,
                controller_heap_free=int(self.rng.uniform(38_000, 42_000)) if serial else None,
                link_errors=0 if serial else None,
                outbox_backlog=0,
                outbox_dropped=0,
                cameras=cameras,
                storage=[m.StorageHealth(device="mmcblk0", health="ok", free_bytes=self._disk_free)],
            ),
        )

    def bell_pressed(self, now_ms: int, bell_id: str | None = None) -> m.BellAlarm:
        """A citizen pressed the bell: an alarm at QoS 1, its id the one the edge agent would give."""
        bell = bell_id or (self.spec.bells[0] if self.spec.bells else "")
        if bell not in self.spec.bells:
            raise ValueError(f"{self.spec.node_id} has no bell {bell!r} (it has {list(self.spec.bells)})")
        self.lamp_for = None  # a new call: the lamp waits for its acknowledgement
        source: Literal["controller", "gpio"] = (
            "gpio" if self.spec.controller_link == "gpio" else "controller"
        )
        return m.BellAlarm(
            ts=now_ms,
            seq=self._next_seq(),
            alarm_id=f"{self.spec.node_id}.{bell}.{now_ms}"[:64],
            bell_id=bell,
            pressed_at=now_ms,
            source=source,
        )

    def camera_changed(self, camera_id: str, *, reachable: bool, now_ms: int, detail: str = "") -> m.Event:
        """A camera stopped (or started again) answering the node's probe: a camera event,
        raised or cleared, which opens (or clears) the fault in the fleet."""
        if camera_id not in self.cameras_up:
            raise ValueError(f"{self.spec.node_id} has no camera {camera_id!r}")
        self.cameras_up[camera_id] = reachable
        return m.Event(
            ts=now_ms,
            seq=self._next_seq(),
            event_id=f"camera.{camera_id}.{now_ms}"[:64],
            category="camera",
            state="cleared" if reachable else "raised",
            severity="major",
            component=camera_id,
            detail=detail or ("RTSP 200 OK" if reachable else "connection refused"),
        )

    # -- what the fleet says

    def downlink(self, topic: Topic, payload: bytes, now_ms: int) -> Answer:
        """One message from the fleet (a node's down/ topic or a host state)."""
        message = m.decode(topic.kind, payload)
        if isinstance(message, ContractError):
            return Answer(refused=message)
        if isinstance(message, m.HostState):
            self.hosts[message.host_id] = message.online
            return Answer()
        if isinstance(message, m.AlarmAck):
            if message.lamp:
                self.lamp_for = message.alarm_id
                return Answer(lamp=message)
            return Answer()
        if isinstance(message, m.Command):
            return Answer(send=self._command(message, now_ms))
        return Answer()  # an update offer: simulated poles take no releases

    def _command(self, command: m.Command, now_ms: int) -> list[m.Message]:
        # QoS 1 may deliver a command twice: it runs once, and its first result is sent again.
        if command.command_id in self._answered:
            return [self._answered[command.command_id]]
        send: list[m.Message] = []
        output: dict[str, m.OutputValue] = {}
        status: m.CommandStatus = "ok"
        detail = ""
        if now_ms > command.expires_at:
            status, detail = "expired", f"expired {now_ms - command.expires_at} ms before it reached the node"
        elif command.name == "rebirth":
            send.append(self.birth(now_ms))  # the result follows in the new session, seq 1
        elif command.name == "ping":
            output = {"agent_version": AGENT_VERSION, "uptime_s": (now_ms - self.started_ms) // 1000}
        elif command.name == "lamp":
            on = command.args.get("on", True)
            output = {"lamp": bool(on)}
        elif command.name == "self-test":
            output = {"ok": all(self.cameras_up.values()), "loop": "normal"}
        else:
            status, detail = "unknown-command", f"this node does not run {command.name!r}"
        result = m.CommandResult(
            ts=now_ms,
            seq=self._next_seq(),
            command_id=command.command_id,
            status=status,
            detail=detail,
            output=output,
        )
        self._answered[command.command_id] = result
        while len(self._answered) > _REMEMBERED_COMMANDS:
            self._answered.popitem(last=False)
        return [*send, result]


# --- the shell: MQTT ---------------------------------------------------------------------------


class PoleOffline(RuntimeError):
    """The demo acted at a pole that has no connection just now."""

    def __init__(self, message: str, *, node_id: str) -> None:
        super().__init__(message)
        self.node_id = node_id


@dataclass
class _Pole:
    spec: PoleSpec
    session: PoleSession
    client: paho.Client
    # paho is not fully thread-safe: each pole publishes under its lock, whichever thread it is
    # on (paho's network thread answering the fleet, the telemetry thread, the demo's script).
    lock: threading.Lock = field(default_factory=threading.Lock)
    telemetry_due: float = 0.0


class SimulatedPoles:
    """`poles.start()` connects every pole and waits for the births; `poles.close()` sends
    each pole's death and disconnects. `on_lamp(node_id, ack)` hears of a lamp lit by an
    operator's acknowledgement (from paho's thread)."""

    def __init__(
        self,
        specs: Sequence[PoleSpec],
        *,
        host: str,
        port: int,
        telemetry_s: float = TELEMETRY_S,
        on_lamp: Callable[[str, m.AlarmAck], None] | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        if telemetry_s <= 0:
            raise ValueError(f"telemetry_s {telemetry_s}: use a positive number of seconds")
        self.host, self.port = host, port
        self.telemetry_s = telemetry_s
        self.on_lamp = on_lamp
        self._clock_ms = clock_ms
        self._stop = threading.Event()
        self._born = threading.Condition()
        self._thread = threading.Thread(target=self._telemetry_loop, name="demo-poles-telemetry", daemon=True)
        started = clock_ms()
        self.poles: dict[str, _Pole] = {}
        for spec in specs:
            # clean_session: a demo run leaves no session behind on a configured broker.
            client = paho.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id=f"watchpost-node-{spec.node_id}",
                clean_session=True,
                userdata=spec.node_id,
            )
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
            client.on_message = self._on_message
            self.poles[spec.node_id] = _Pole(spec, PoleSession(spec, started_ms=started), client)

    # -- lifecycle

    def start(self, *, timeout: float = 20.0) -> None:
        """Connect every pole; return once each has published its birth."""
        for pole in self.poles.values():
            with pole.lock:
                self._will(pole)
            pole.client.connect(self.host, self.port, keepalive=30)
            pole.client.loop_start()
        deadline = time.monotonic() + timeout
        with self._born:
            while missing := [n for n, p in self.poles.items() if not p.session.online]:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(missing)} simulated poles not connected in {timeout} s: {missing[:5]}"
                    )
                self._born.wait(left)
        # Spread the poles' telemetry over the interval, as poles that booted apart would.
        now = time.monotonic()
        for k, pole in enumerate(self.poles.values()):
            pole.telemetry_due = now + self.telemetry_s * (k + 1) / len(self.poles)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for pole in self.poles.values():
            with pole.lock:
                info = self._publish(pole, pole.session.death(self._clock_ms()))
            if info is not None:
                # Outside the lock: paho's thread may need it to deliver what is in flight.
                info.wait_for_publish(timeout=2)
            pole.client.disconnect()
            pole.client.loop_stop()

    # -- the demo's hands at a pole

    def press_bell(self, node_id: str) -> m.BellAlarm:
        pole = self.poles[node_id]
        with pole.lock:
            self._connected(pole)
            alarm = pole.session.bell_pressed(self._clock_ms())
            self._publish(pole, alarm)
        return alarm

    def set_camera(self, node_id: str, camera_id: str, *, reachable: bool, detail: str = "") -> m.Event:
        pole = self.poles[node_id]
        with pole.lock:
            self._connected(pole)
            event = pole.session.camera_changed(
                camera_id, reachable=reachable, now_ms=self._clock_ms(), detail=detail
            )
            self._publish(pole, event)
        return event

    def lamp_for(self, node_id: str) -> str | None:
        """The alarm whose acknowledgement lit this pole's lamp, if any."""
        return self.poles[node_id].session.lamp_for

    # -- paho's callbacks (its network thread)

    def _on_connect(
        self, client: paho.Client, node_id: str, flags: object, code: object, props: object
    ) -> None:
        pole = self.poles[node_id]
        if getattr(code, "is_failure", False):
            log.warning("demo poles: the broker refused %s: %s", node_id, code)
            return
        for topic in node_subscriptions(node_id):
            client.subscribe(topic, qos=1)
        with pole.lock:
            self._publish(pole, pole.session.connected(self._clock_ms()))
        with self._born:
            self._born.notify_all()

    def _on_disconnect(
        self, client: paho.Client, node_id: str, flags: object, code: object, props: object
    ) -> None:
        pole = self.poles[node_id]
        with pole.lock:
            pole.session.lost()
            if not self._stop.is_set():
                self._will(pole)  # paho reconnects by itself: the next connection's will

    def _on_message(self, client: paho.Client, node_id: str, message: paho.MQTTMessage) -> None:
        pole = self.poles[node_id]
        topic = parse_topic(message.topic)
        if isinstance(topic, ContractError):
            return
        with pole.lock:
            answer = pole.session.downlink(topic, bytes(message.payload), self._clock_ms())
            for reply in answer.send:
                self._publish(pole, reply)
        if answer.refused is not None:
            log.warning("demo poles: %s refused a %s: %s", node_id, topic.kind, answer.refused)
        if answer.lamp is not None and self.on_lamp is not None:
            self.on_lamp(node_id, answer.lamp)

    # -- inside a pole's lock

    def _connected(self, pole: _Pole) -> None:
        # A real node would keep the record in its outbox until it is back; the demo says so.
        if not (pole.session.online and pole.client.is_connected()):
            raise PoleOffline(
                f"{pole.spec.node_id} is not connected to the broker", node_id=pole.spec.node_id
            )

    def _will(self, pole: _Pole) -> None:
        death = pole.session.connecting(self._clock_ms())
        pole.client.will_set(node_topic(pole.spec.node_id, Kind.DEATH), m.encode(death), qos=1, retain=False)

    def _publish(self, pole: _Pole, message: m.Message) -> paho.MQTTMessageInfo | None:
        kind = m.kind_of(message)
        route = ROUTES[kind]
        if not pole.client.is_connected():
            return None  # paho would "succeed" and drop it; a real node keeps it in its outbox
        return pole.client.publish(
            node_topic(pole.spec.node_id, kind), m.encode(message), qos=route.qos, retain=route.retain
        )

    def _telemetry_loop(self) -> None:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            for pole in self.poles.values():
                if now < pole.telemetry_due:
                    continue
                pole.telemetry_due = now + self.telemetry_s
                with pole.lock:
                    if pole.session.may_send():
                        self._publish(pole, pole.session.telemetry(self._clock_ms()))
