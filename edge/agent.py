"""The edge agent: wires the pole's sources through the local rules into the durable outbox,
and the outbox to the MQTT uplink; runs the fleet's commands; tells systemd it is alive.

    pole controller (UART) or GPIO ──▶ rules ──▶ outbox (flash) ──▶ uplink ──▶ broker
    cameras / NVR (HTTP push) ───────▶ rules ──┘        ▲
    storage, system, camera probes ──▶ telemetry ───────┘

One asyncio loop, one task per job (named, in a TaskGroup). Nothing here decides much: the
decisions live in edge.rules, edge.outbox.policy and edge.uplink.session.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast, get_args

import msgspec

from edge.cameras import CameraConfig, MetadataIngest, ProbeResult, RecordingGap, probe_all
from edge.commands import CommandRejected, CommandRunner, Handler, LogRing, Output
from edge.config import RUNTIME_KEYS, ConfigError, EdgeConfig, load_overrides, read_secret, with_override
from edge.controller.link import ControllerLink
from edge.controller.pole import ControllerPole
from edge.diagnostics import Diagnostics, add_diagnostics_routes
from edge.http import HttpServer, Router
from edge.identity import load_or_create_node_key
from edge.ota.node import AgentHooks, OtaNode, running_release
from edge.outbox import (
    LANE_OF_KIND,
    CommitPolicy,
    GroupCommitter,
    Lane,
    Outbox,
    OutboxFull,
    OutboxLimits,
    RecordId,
)
from edge.pole import BellPress, ControllerRestarted, PoleEvent, PoleInputs
from edge.rules import (
    Bookmarks,
    VideoRecord,
    alarm_for,
    camera_event,
    event_for,
    gap_event,
    storage_event,
)
from edge.storage import StorageConfig, StorageReport, probe_storage, start_short_self_test
from edge.system import SystemReadings, read_system
from edge.systemd import Notifier
from edge.uplink.mqtt import Downlink, TlsSettings, Uplink, UplinkSettings
from edge.version import AGENT_VERSION
from protocols import messages as m
from protocols.ota import key_id
from protocols.visits import public_key_text, sign_visit

if TYPE_CHECKING:
    from edge.gpio.fake import FakePoleWiring

log = logging.getLogger(__name__)

SELF_TESTS = ("bell-circuit", "cameras", "smart", "mqtt")
# How long an unacknowledged bell press holds back an update's restart: the fleet holds offers
# while the alarm is latched; this covers a press that comes after the offer.
CALL_HOLD_MS = 15 * 60 * 1000
MAX_VIDEO_BATCH = 1000  # records per VideoBatch (protocols.messages)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class AgentCounters:
    alarms: int = 0
    events: int = 0
    video_records: int = 0
    video_refused: int = 0  # pushes answered 503: the outbox could not take them
    telemetry: int = 0
    lamp_failures: int = 0
    source_errors: dict[str, int] = field(default_factory=dict)


class Agent:
    """`await Agent(config).run()` runs until cancelled (SIGTERM in `watchpost edge run`)."""

    self_tests = SELF_TESTS

    def __init__(
        self,
        config: EdgeConfig,
        *,
        pole: PoleInputs | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        environ: Mapping[str, str] = os.environ,
        log_ring: LogRing | None = None,
    ) -> None:
        self._overrides_path = config.node.state_dir / "config-overrides.json"
        config, skipped = load_overrides(self._overrides_path, config)
        for problem in skipped:
            log.warning("config override %s", problem)
        self.config = config
        self.node_id = config.node.id
        self._clock_ms = clock_ms
        self.started_ms = clock_ms()
        config.node.state_dir.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(
            config.outbox_path,
            limits=OutboxLimits(
                max_records=config.outbox.max_records, max_bytes=config.outbox.max_mb * 2**20
            ),
            ballast_bytes=config.outbox.ballast_kb * 1024,
            min_free_bytes=config.outbox.min_free_mb * 2**20,
        )
        self.committer = GroupCommitter(
            self.outbox, policy=CommitPolicy(interval_s=config.outbox.commit_interval_ms / 1000)
        )
        self.uplink = Uplink(
            _uplink_settings(config),
            outbox=self.outbox,
            committer=self.committer,
            birth=self._birth,
            on_downlink=self._on_downlink,
            state_dir=config.node.state_dir,
            clock_ms=clock_ms,
        )
        self.pole = pole
        self.bookmarks = Bookmarks(window_ms=config.rules.bookmark_window_s * 1000)
        self.log_ring = log_ring or LogRing()
        self.commands = CommandRunner(
            self._command_handlers(),
            publish=self.store,
            clock_ms=clock_ms,
            state_dir=config.node.state_dir,
        )
        self.notifier = Notifier(environ)
        self.counters = AgentCounters()
        self.lamp_on_until_ms: int | None = None
        self.unanswered_press_ms: int | None = None  # a bell press no acknowledgement answered yet
        self.storage_reports: dict[str, StorageReport] = {}
        self.camera_probes: dict[str, ProbeResult] = {}
        self.ingest: MetadataIngest | None = None
        self.diagnostics: Diagnostics | None = None
        self.gpio_wiring: FakePoleWiring | None = None  # with gpio.mock: the demo's and tests' hands
        self._background: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()
        self.node_key = load_or_create_node_key(config.node.state_dir)
        self._visits = itertools.count(1)
        self.ota = OtaNode(
            config,
            AgentHooks(
                store=self.store,
                flush=self.committer.flush,
                self_test=self.self_test,
                uplink_online=lambda: self.uplink.online,
                controller_up=self._controller_up if config.controller is not None else None,
                firmware_version=lambda: getattr(getattr(self.pole, "readings", None), "firmware", None),
                next_hello=self._next_hello if config.controller is not None else None,
                bell_call_active=self.bell_call_active,
            ),
            agent_version=AGENT_VERSION,
            clock_ms=clock_ms,
            release=running_release(environ),
        )

    # --- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with self._pole_source() as pole, self._http(), asyncio.TaskGroup() as tasks:
                self.pole = pole
                tasks.create_task(self.committer.run(), name="outbox-commit")
                tasks.create_task(self.uplink.run(), name="uplink")
                tasks.create_task(self._pole_loop(pole), name="pole")
                tasks.create_task(self._telemetry_loop(), name="telemetry")
                tasks.create_task(self._camera_loop(), name="cameras")
                if self.config.storage.devices:
                    tasks.create_task(self._storage_loop(), name="storage")
                tasks.create_task(self._watchdog_loop(), name="systemd-watchdog")
                # Settles a trial (health gate) or resumes an update; may end the agent with
                # RestartRequested, for systemd to start the boot selector again (edge.run).
                tasks.create_task(self.ota.run(), name="ota")
                self.ready.set()
                self.notifier.ready(f"node {self.node_id}: running")
                log.info("agent %s running for node %s", AGENT_VERSION, self.node_id)
        finally:
            self.notifier.stopping()
            await self.commands.aclose()
            for task in list(self._background):
                task.cancel()
            self.outbox.close()
            self.notifier.close()

    @contextlib.asynccontextmanager
    async def _pole_source(self) -> AsyncIterator[PoleInputs]:
        if self.pole is not None:
            yield self.pole
            return
        if self.config.controller is not None:
            link = ControllerLink(
                port=self.config.controller.port,
                command_timeout=self.config.controller.command_timeout_s,
                confirm_delivery=True,
            )
            async with link:
                yield ControllerPole(link, clock_ms=self._clock_ms)
            return
        if self.config.gpio is not None:
            # Imported here: gpiozero costs about 12 MB of RSS, and most poles have a controller.
            from edge.gpio import GpioPole  # noqa: PLC0415
            from edge.gpio.fake import FakePoleWiring  # noqa: PLC0415

            gpio = self.config.gpio
            factory = None
            if gpio.mock:
                log.warning("gpio.mock = true: the bell, door and lamp are simulated, not the Pi's pins")
                self.gpio_wiring = FakePoleWiring(
                    bell_pin=gpio.bell_pin, door_pin=gpio.door_pin, lamp_pin=gpio.lamp_pin
                )
                factory = self.gpio_wiring.factory
            pole = GpioPole(
                bell_pin=gpio.bell_pin,
                door_pin=gpio.door_pin,
                lamp_pin=gpio.lamp_pin,
                bell_id=gpio.bell_id,
                pin_factory=factory,
                clock_ms=self._clock_ms,
            )
            try:
                async with pole:
                    yield pole
            finally:
                if self.gpio_wiring is not None:
                    self.gpio_wiring.close()
            return
        yield _NoPole()

    @contextlib.asynccontextmanager
    async def _http(self) -> AsyncIterator[None]:
        """The node's local HTTP: metadata pushes from cameras/NVR (and diagnostics)."""
        http = self.config.http
        token = (
            read_secret(http.metadata_token_file, what="the metadata token")
            if http.metadata_token_file
            else None
        )
        self.ingest = MetadataIngest(
            camera_ids=[c.id for c in self.config.cameras],
            accept=self.accept_video,
            on_gap=self._on_gap,
            clock=self._clock_ms,
            max_body_bytes=http.max_push_kb * 1024,
            token=token,
        )
        router = Router()
        self.ingest.add_routes(router)
        pin = read_secret(http.pin_file, what="the diagnostics PIN") if http.pin_file else None
        try:
            self.diagnostics = add_diagnostics_routes(router, self, pin=pin)
        except ValueError as error:
            raise ConfigError(str(error), key="http.pin_file") from None
        # A little over the push limit, so the ingest reads a push just over it and says so itself.
        server = HttpServer(router, http.listen, http.port, max_body_bytes=http.max_push_kb * 1024 + 4096)
        async with server:
            log.info("local HTTP on %s:%s", http.listen, http.port)
            yield

    def _on_gap(self, gap: RecordingGap) -> None:
        self.store(gap_event(gap.camera_id, gap.gap_start, gap.gap_end, self._clock_ms()))
        self.counters.events += 1

    # --- into the outbox ----------------------------------------------------------------------

    def store(self, message: m.Message) -> RecordId:
        """Append one message to the outbox (alarms are committed before this returns)."""
        kind = m.kind_of(message).value
        return self.committer.append(LANE_OF_KIND[kind], kind, m.encode(message))

    async def _pole_loop(self, pole: PoleInputs) -> None:
        while True:
            event = await pole.next_event()
            try:
                await self.on_pole_event(event)
            except OutboxFull as error:
                # An alarm or event that cannot be written stays in memory and is retried at
                # every commit; the source is not told it is stored, so it keeps it too.
                log.error("pole event kept in memory, the outbox is full: %s", error)
                continue
            pole.stored(event)

    async def on_pole_event(self, event: PoleEvent) -> None:
        if isinstance(event, BellPress):
            alarm = alarm_for(self.node_id, event)
            self.store(alarm)  # committed on return; the uplink is woken by the commit
            self.unanswered_press_ms = self._clock_ms()
            self.counters.alarms += 1
            log.warning("bell %s pressed: alarm %s", event.bell_id, alarm.alarm_id)
            try:
                self._store_video(self.bookmarks.on_alarm(alarm))
            except OutboxFull as error:
                # The alarm is stored; only the tagged copies of earlier footage are not.
                self.counters.video_refused += 1
                log.warning("bookmarked video for alarm %s not kept: %s", alarm.alarm_id, error)
            return
        self.store(event_for(event))
        self.counters.events += 1
        await self.committer.flush()  # rare, and the controller waits for this ack
        if isinstance(event, ControllerRestarted):
            # The birth carries the controller's firmware and reset cause: a new one keeps the
            # fleet's view of the pole current (a first birth may even precede the first HELLO).
            self.uplink.rebirth()

    async def accept_video(self, records: list[VideoRecord]) -> None:
        """Video metadata pushed by a camera or the NVR: durable when this returns.

        Raises OutboxFull when the outbox refuses it; the HTTP layer answers 503 so the
        sender keeps it and tries again."""
        tagged = self.bookmarks.on_records(records, self._clock_ms())
        try:
            self._store_video(tagged)
            await self.committer.durable()
        except OutboxFull:
            self.counters.video_refused += 1
            raise
        self.counters.video_records += len(records)

    def _store_video(self, records: list[VideoRecord]) -> None:
        for start in range(0, len(records), MAX_VIDEO_BATCH):
            chunk = records[start : start + MAX_VIDEO_BATCH]
            self.store(m.VideoBatch(ts=self._clock_ms(), seq=0, records=chunk))

    # --- telemetry and health -----------------------------------------------------------------

    async def _telemetry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.telemetry.interval_s)
            try:
                system = await self._system()
                readings = system.fill(self.readings())
                self.store(m.Telemetry(ts=self._clock_ms(), seq=0, readings=readings))
                self.counters.telemetry += 1
            except OutboxFull as error:
                log.info("telemetry not kept: %s", error)

    def _camera_configs(self) -> list[CameraConfig]:
        """The config file's cameras as the camera source takes them."""
        return [
            CameraConfig(camera_id=c.id, name=c.name, host=c.host, port=c.port, probe=c.probe, model=c.model)
            for c in self.config.cameras
        ]

    async def _camera_loop(self) -> None:
        cameras = self._camera_configs()
        while True:
            if self.ingest is not None:
                self.ingest.settle_gaps()
            for result in await probe_all(cameras):
                before = self.camera_probes.get(result.camera_id)
                if (before is None and not result.reachable) or (
                    before and before.reachable != result.reachable
                ):
                    self.store(
                        camera_event(result.camera_id, result.reachable, self._clock_ms(), result.detail)
                    )
                    self.counters.events += 1
                self.camera_probes[result.camera_id] = result
            await asyncio.sleep(self.config.telemetry.camera_probe_s)

    async def _storage_loop(self) -> None:
        storage = StorageConfig(
            devices=tuple(self.config.storage.devices),
            data_dir=self.config.node.state_dir,
            smartctl=self.config.storage.smartctl,
        )
        while True:
            reports = await probe_storage(storage)
            for report in reports:
                before = self.storage_reports.get(report.device)
                event = storage_event(
                    report.device,
                    before.health if before else None,
                    report.health,
                    self._clock_ms(),
                    list(report.reasons),
                )
                if event is not None:
                    self.store(event)
                    self.counters.events += 1
                self.storage_reports[report.device] = report
            await asyncio.sleep(self.config.storage.interval_s)

    async def _system(self) -> SystemReadings:
        # File reads and, on a Pi, `vcgencmd`: off the loop, so a slow firmware call cannot
        # delay a bell press.
        return await asyncio.to_thread(read_system, data_dir=self.config.node.state_dir)

    def readings(self) -> m.Readings:
        usage = self.outbox.usage()
        dropped = sum(v for k, v in self.outbox.counters.items() if k.startswith("dropped_"))
        controller = getattr(self.pole, "readings", None)
        return m.Readings(
            uptime_s=max(0, (self._clock_ms() - self.started_ms) // 1000),
            controller_temp_c=getattr(controller, "temp_c", None),
            supply_v=getattr(controller, "supply_v", None),
            controller_heap_free=getattr(controller, "heap_free", None),
            outbox_backlog=usage.total_records,
            outbox_dropped=dropped,
            storage=[report.telemetry() for report in self.storage_reports.values()][:16],
            cameras=[probe.health() for probe in self.camera_probes.values()][:64],
        )

    async def _watchdog_loop(self) -> None:
        # The pings come from the event loop itself: a loop that hangs stops them, and systemd
        # restarts the agent (WatchdogSec= in the unit).
        interval = self.notifier.watchdog_s
        if interval is None:
            return
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _birth(self, bd_seq: int, ts: int) -> m.NodeBirth:
        cfg = self.config
        controller = None
        readings = getattr(self.pole, "readings", None)
        if cfg.controller is not None:
            controller = m.ControllerInfo(
                link="serial",
                firmware_version=_version_or_none(getattr(readings, "firmware", None)),
                reset_cause=_reset_cause(getattr(readings, "reset_cause", None)),
            )
        elif cfg.gpio is not None:
            controller = m.ControllerInfo(link="gpio")
        bells = [cfg.gpio.bell_id] if cfg.gpio is not None else ["bell-1"] if cfg.controller else []
        return m.NodeBirth(
            ts=ts,
            seq=0,
            bd_seq=bd_seq,
            site_id=cfg.node.site_id,
            hardware=cfg.node.hardware,
            agent_version=AGENT_VERSION,
            controller=controller,
            cameras=[m.CameraInfo(camera_id=c.id, name=c.name, model=c.model) for c in cfg.cameras],
            bells=bells,
            capabilities=sorted(self.commands.handlers),
            node_key=public_key_text(self.node_key.public_key()),
        )

    # --- for the technician on site (edge.diagnostics) -----------------------------------------

    def status(self) -> dict[str, Any]:
        """Everything a technician looks at, as JSON-ready values."""
        usage = self.outbox.usage()
        session = self.uplink.session
        pole: dict[str, Any] = {
            "wiring": "controller" if self.config.controller else "gpio" if self.config.gpio else "none"
        }
        readings = getattr(self.pole, "readings", None)
        if readings is not None:
            pole |= msgspec.to_builtins(dataclasses.asdict(readings))
            link = getattr(self.pole, "controller", None)
            if link is not None:
                pole["link_counters"] = dataclasses.asdict(link.counters())
        gpio_status = getattr(self.pole, "status", None)
        if callable(gpio_status):
            pole |= msgspec.to_builtins(gpio_status())
        return {
            "node": {
                "id": self.node_id,
                "site_id": self.config.node.site_id,
                "agent_version": AGENT_VERSION,
                "uptime_s": (self._clock_ms() - self.started_ms) // 1000,
                "time_ms": self._clock_ms(),
                "node_key_id": key_id(self.node_key.public_key()),
            },
            "uplink": {
                "state": session.state.value,
                "broker": f"{self.config.uplink.host}:{self.config.uplink.port}",
                "bd_seq": session.bd_seq,
                "last_error": session.last_error,
                "fleet_hosts": dict(session.hosts),
                "in_flight": self.uplink.in_flight(),
                "counters": dataclasses.asdict(self.uplink.counters),
            },
            "outbox": {
                "backlog": {lane.name.lower(): usage.records[lane] for lane in Lane},
                "bytes": usage.total_bytes,
                "disk_full": self.outbox.disk_full,
                "counters": dict(self.outbox.counters),
            },
            "pole": pole,
            "lamp_on_until_ms": self.lamp_on_until_ms,
            "cameras": [
                {
                    "camera_id": p.camera_id,
                    "reachable": p.reachable,
                    "latency_ms": p.latency_ms,
                    "detail": p.detail,
                    "probed_at_ms": p.probed_at_ms,
                }
                for p in self.camera_probes.values()
            ],
            "metadata_ingest": msgspec.to_builtins(dataclasses.asdict(self.ingest.counters()))
            if self.ingest
            else None,
            "storage": [_storage_status(r) for r in self.storage_reports.values()],
            "counters": dataclasses.asdict(self.counters),
        }

    async def self_test(self, name: str) -> dict[str, Any]:
        """Run one self-test for a technician: "bell-circuit", "mqtt" (more as sources join)."""
        if name == "bell-circuit":
            command_of = getattr(self.pole, "command", None)
            if command_of is not None:
                result = await command_of("self-test")
                return {
                    "ok": bool(result.ok and result.loop == "normal"),
                    "loop": result.loop,
                    "raw": result.raw,
                }
            gpio_status = getattr(self.pole, "status", None)
            if callable(gpio_status):
                state = gpio_status()
                return {
                    "ok": not state.bell_stuck,
                    "bell_pressed": state.bell_pressed,
                    "bell_stuck": state.bell_stuck,
                }
            return {"ok": False, "detail": "this node has no bell"}
        if name == "cameras":
            cameras = self._camera_configs()
            results = await probe_all(cameras)
            for result in results:
                self.camera_probes[result.camera_id] = result
            return {
                "ok": all(r.reachable for r in results),
                "cameras": {r.camera_id: r.detail for r in results},
            }
        if name == "smart":
            devices = [d for d in self.config.storage.devices if not d.startswith("/dev/mmcblk")]
            if not devices:
                return {"ok": False, "detail": "no SMART-capable storage configured (storage.devices)"}
            starts = [await start_short_self_test(d, smartctl=self.config.storage.smartctl) for d in devices]
            return {
                "ok": all(s.started for s in starts),
                "devices": {s.device: s.summary for s in starts},
                "minutes": max((s.polling_minutes or 0) for s in starts),
            }
        if name == "mqtt":
            session = self.uplink.session
            if not self.uplink.online:
                return {
                    "ok": False,
                    "detail": f"uplink {session.state.value}: {session.last_error or 'not connected'}",
                }
            started = time.monotonic()
            record = self.store(
                m.Event(
                    ts=self._clock_ms(),
                    seq=0,
                    event_id=f"diag.mqtt.{self._clock_ms()}",
                    category="system",
                    state="info",
                    severity="info",
                    detail="diagnostics: MQTT round trip",
                )
            )
            await self.committer.flush()
            try:
                async with asyncio.timeout(10):
                    await self.uplink.wait_delivered(record)
            except TimeoutError:
                return {
                    "ok": False,
                    "detail": f"no PUBACK within 10 s (uplink {self.uplink.session.state.value})",
                }
            return {"ok": True, "round_trip_ms": round((time.monotonic() - started) * 1000, 1)}
        raise ValueError(f"unknown self-test {name!r}; accepted: {', '.join(SELF_TESTS)}")

    async def site_visit(
        self, action: m.VisitAction, technician: str, *, fault_id: str | None = None, note: str = ""
    ) -> m.SiteVisit:
        """Sign a technician's check-in/resolve/check-out and keep it in the outbox until it
        reaches the fleet (it waits there, with the node's time of the visit, if the uplink is down)."""
        now = self._clock_ms()
        visit = sign_visit(
            self.node_id,
            self.node_key,
            ts=now,
            visit_id=f"visit.{now}.{next(self._visits)}"[:64],
            action=action,
            technician=technician,
            at=now,
            clock_synced=None,
            fault_id=fault_id,
            note=note,
        )
        self.store(visit)
        await self.committer.flush()
        log.info("site visit %s: %s by %s (fault %s)", visit.visit_id, action, technician, fault_id)
        return visit

    # --- from the fleet -----------------------------------------------------------------------

    def _on_downlink(self, message: Downlink) -> None:
        if isinstance(message, m.Command):
            self.commands.submit(message)
        elif isinstance(message, m.AlarmAck):
            log.info("alarm %s acknowledged by %s", message.alarm_id, message.operator)
            self.unanswered_press_ms = None
            if message.lamp:
                self._spawn(self._light_lamp(), name=f"lamp-{message.alarm_id}")
        else:
            self.ota.offer(message)

    async def _light_lamp(self) -> None:
        seconds = self.config.rules.lamp_s
        try:
            assert self.pole is not None
            await self.pole.set_lamp(True, seconds=seconds)
        except Exception as error:
            self.counters.lamp_failures += 1
            log.error("could not light the call-received lamp: %s", error)
            return
        self.lamp_on_until_ms = self._clock_ms() + seconds * 1000 if seconds else None

    def bell_call_active(self) -> bool:
        """A citizen's call is under way: a press not acknowledged yet (for up to
        CALL_HOLD_MS), or the call-received lamp lit. An update waits (edge.ota) rather than
        restart the agent or the controller in the middle of it."""
        now = self._clock_ms()
        pressed = self.unanswered_press_ms
        if pressed is not None and now - pressed < CALL_HOLD_MS:
            return True
        lamp = self.lamp_on_until_ms
        return lamp is not None and now < lamp

    def _controller_up(self) -> bool:
        link = getattr(self.pole, "controller", None)
        return bool(getattr(link, "peer_up", False))

    async def _next_hello(self, timeout_s: float, since: float | None = None) -> str | None:
        link = getattr(self.pole, "controller", None)
        if link is None:
            return None
        hello = await link.next_hello(timeout_s, since=since)
        return None if hello is None else str(hello.fw)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _command_handlers(self) -> dict[str, Handler]:
        return {
            "ping": self._cmd_ping,
            "lamp": self._cmd_lamp,
            "self-test": self._cmd_self_test,
            "reboot-controller": self._cmd_reboot_controller,
            "fetch-logs": self._cmd_fetch_logs,
            "rebirth": self._cmd_rebirth,
            "set-config": self._cmd_set_config,
        }

    async def _cmd_ping(self, command: m.Command) -> Output:
        return {"agent_version": AGENT_VERSION, "uptime_s": (self._clock_ms() - self.started_ms) // 1000}

    async def _cmd_lamp(self, command: m.Command) -> Output:
        on = command.args.get("on", True)
        seconds = command.args.get("seconds", 0)
        if not isinstance(on, bool) or not isinstance(seconds, int) or not 0 <= seconds <= 86_400:
            raise CommandRejected("lamp takes on (true/false) and seconds (0 to 86400)")
        assert self.pole is not None
        await self.pole.set_lamp(on, seconds=seconds)
        return {"lamp": on, "seconds": seconds}

    async def _cmd_self_test(self, command: m.Command) -> Output:
        command_of = getattr(self.pole, "command", None)
        if command_of is None:
            raise CommandRejected("this pole has no controller to self-test")
        result = await command_of("self-test")
        output: Output = {"ok": result.ok}
        for name in ("loop", "raw", "c", "v", "stuck", "err"):
            value = getattr(result, name)
            if value is not None:
                output[name] = value
        return output

    async def _cmd_reboot_controller(self, command: m.Command) -> Output:
        command_of = getattr(self.pole, "command", None)
        if command_of is None:
            raise CommandRejected("this pole has no pole controller to reboot")
        result = await command_of("reboot")
        return {"ok": result.ok}

    async def _cmd_fetch_logs(self, command: m.Command) -> Output:
        lines = command.args.get("lines", 100)
        if not isinstance(lines, int) or not 1 <= lines <= 500:
            raise CommandRejected("fetch-logs takes lines from 1 to 500")
        return {"lines": self.log_ring.tail(lines)}

    async def _cmd_set_config(self, command: m.Command) -> Output:
        """Change runtime keys ({"telemetry.interval_s": 30, ...}); kept across restarts in the
        state directory, on top of the config file. All or nothing."""
        if not command.args:
            raise CommandRejected(f"set-config takes one or more of: {', '.join(RUNTIME_KEYS)}")
        config = self.config
        try:
            for key, value in command.args.items():
                config = with_override(config, key, value)
        except ConfigError as error:
            raise CommandRejected(str(error)) from None
        saved = self._overrides()
        saved.update(command.args)
        tmp = self._overrides_path.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.encode(saved))
        os.replace(tmp, self._overrides_path)
        self.config = config
        log.info("config changed by %s: %s", command.issued_by, dict(command.args))
        return dict(command.args)

    def _overrides(self) -> dict[str, m.ConfigValue]:
        try:
            saved: dict[str, m.ConfigValue] = msgspec.json.decode(self._overrides_path.read_bytes())
        except (OSError, msgspec.DecodeError):
            return {}
        return saved

    async def _cmd_rebirth(self, command: m.Command) -> Output:
        if not self.uplink.rebirth():
            raise CommandRejected("not connected")
        return {}


class _NoPole:
    """A node with neither a pole controller nor GPIO: cameras only."""

    async def next_event(self) -> PoleEvent:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def set_lamp(self, on: bool, *, seconds: int = 0) -> None:
        raise CommandRejected("this node has no lamp")

    def stored(self, event: PoleEvent) -> None:
        pass


def _uplink_settings(config: EdgeConfig) -> UplinkSettings:
    up = config.uplink
    tls = TlsSettings(ca_file=up.ca_file, cert_file=up.cert_file, key_file=up.key_file) if up.tls else None
    password = read_secret(up.password_file, what="the MQTT password") if up.password_file else None
    return UplinkSettings(
        node_id=config.node.id,
        host=up.host,
        port=up.port,
        keepalive_s=up.keepalive_s,
        username=up.username,
        password=password,
        tls=tls,
        reconnect_cap_s=up.reconnect_max_s,
        window=up.window,
    )


def _version_or_none(value: str | None) -> str | None:
    return value if value and len(value) <= 64 and re.match(m.VERSION_PATTERN, value) else None


def _reset_cause(value: str | None) -> m.ResetCause | None:
    return cast("m.ResetCause", value) if value in get_args(m.ResetCause) else None


def _storage_status(report: StorageReport) -> dict[str, Any]:
    return {
        "device": report.device,
        "health": report.health,
        "reasons": list(report.reasons),
        "wear_pct": report.wear_pct,
        "free_bytes": report.free_bytes,
        "read_only": report.read_only,
        "temperature_c": report.temperature_c,
        "power_on_hours": report.power_on_hours,
        "smart_exit": list(report.smart_exit_meanings),
    }
