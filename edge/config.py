"""The edge agent's configuration: one TOML file, checked whole at start-up.

A mistake is reported with the key's dotted path and what would be accepted, before anything
starts, e.g. `uplink.port: expected an integer from 1 to 65535, got "mqtt"`. Secrets (the MQTT
password, the diagnostics PIN) are read from files named here, so the config itself can be
shown to anyone. An example with every key: docs/edge.md, and tests/edge/test_config.py keeps
that example valid.
"""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from protocols.messages import VERSION_PATTERN
from protocols.topics import ID_PATTERN

Id = Annotated[str, Meta(pattern=ID_PATTERN)]
Port = Annotated[int, Meta(ge=1, le=65535)]
Seconds = Annotated[float, Meta(gt=0, le=86_400)]
Pin = Annotated[int, Meta(ge=0, le=27)]  # BCM numbering on the Pi's 40-pin header


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class NodeConfig(_Section, kw_only=True, frozen=True):
    id: Id
    site_id: Id
    hardware: Annotated[str, Meta(min_length=1, max_length=128)] = "raspberrypi"
    state_dir: Path = Path("/var/lib/watchpost")  # outbox, bd_seq, node key: on the node's flash


class UplinkConfig(_Section, kw_only=True, frozen=True):
    host: Annotated[str, Meta(min_length=1, max_length=253)]
    port: Port = 1883
    keepalive_s: Annotated[int, Meta(ge=5, le=3600)] = 30
    username: str | None = None
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    reconnect_max_s: Seconds = 60.0
    window: Annotated[int, Meta(ge=1, le=1000)] = 64

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("uplink.cert_file and uplink.key_file go together: give both or neither")
        if not self.tls and (self.ca_file or self.cert_file):
            raise ValueError("uplink.ca_file/cert_file need uplink.tls = true")


class OutboxConfig(_Section, kw_only=True, frozen=True):
    max_records: Annotated[int, Meta(ge=1000, le=100_000_000)] = 1_000_000
    max_mb: Annotated[int, Meta(ge=1, le=1_000_000)] = 256
    commit_interval_ms: Annotated[int, Meta(ge=1, le=100)] = 100  # the contract's ceiling is 100 ms
    # Space held back on the flash, given up when the disk is full so video can still be
    # evicted and alarms committed (edge.outbox.store).
    ballast_kb: Annotated[int, Meta(ge=0, le=65536)] = 2048
    # Free space kept on the flash: below it the outbox stops growing and video makes way.
    min_free_mb: Annotated[int, Meta(ge=1, le=65536)] = 8


class ControllerConfig(_Section, kw_only=True, frozen=True):
    """A pole controller on a UART (firmware/)."""

    port: Annotated[str, Meta(min_length=1)]  # e.g. /dev/ttyAMA0, or the simulator's <state>/uart
    command_timeout_s: Seconds = 5.0
    # The controller's MicroPython REPL (USB), for firmware updates; None: no firmware updates.
    console: Annotated[str, Meta(min_length=1)] | None = None
    hardware: Annotated[str, Meta(min_length=1, max_length=128)] = "rp2040-pico"  # OTA manifests match it


class GpioConfig(_Section, kw_only=True, frozen=True):
    """Bell, door and lamp wired straight to the Pi (no pole controller)."""

    bell_pin: Pin
    door_pin: Pin
    lamp_pin: Pin
    bell_id: Id = "bell-1"
    mock: bool = False  # gpiozero's MockFactory: for the demo and tests, never on a pole

    def __post_init__(self) -> None:
        pins = [self.bell_pin, self.door_pin, self.lamp_pin]
        if len(set(pins)) != 3:
            raise ValueError(f"gpio.bell_pin, door_pin and lamp_pin must differ, got {pins}")


class CameraConfig(_Section, kw_only=True, frozen=True):
    id: Id
    name: Annotated[str, Meta(min_length=1, max_length=128)]
    host: Annotated[str, Meta(min_length=1, max_length=253)]
    port: Port = 554
    probe: Literal["rtsp", "tcp"] = "rtsp"
    model: str | None = None


class StorageConfig(_Section, kw_only=True, frozen=True):
    devices: list[str] = []  # e.g. ["/dev/mmcblk0", "/dev/sda"]
    smartctl: str = "smartctl"
    interval_s: Seconds = 3600.0


class HttpConfig(_Section, kw_only=True, frozen=True):
    """The node's local HTTP: camera/NVR metadata pushes and the technicians' diagnostics."""

    listen: Annotated[str, Meta(min_length=1)] = "0.0.0.0"  # the service interface's address
    port: Port = 8080
    pin_file: Path | None = None  # diagnostics PIN; None: diagnostics disabled
    metadata_token_file: Path | None = None  # shared token cameras/NVR send; None: open
    max_push_kb: Annotated[int, Meta(ge=1, le=65536)] = 1024


class TelemetryConfig(_Section, kw_only=True, frozen=True):
    interval_s: Seconds = 60.0
    camera_probe_s: Seconds = 60.0


class RulesConfig(_Section, kw_only=True, frozen=True):
    bookmark_window_s: Annotated[int, Meta(ge=0, le=3600)] = 60  # metadata tagged around a bell press
    lamp_s: Annotated[int, Meta(ge=0, le=86_400)] = 300  # lamp lit after an ack; 0: until put out


class SystemdConfig(_Section, kw_only=True, frozen=True):
    watchdog: bool = True  # ping systemd's watchdog when the unit asks for it (WatchdogSec=)


class OtaConfig(_Section, kw_only=True, frozen=True):
    """Signed updates (docs/adr/0009, edge.ota)."""

    enabled: bool = True
    root: Path = Path("/opt/watchpost")  # releases/, and the current and committed links
    trusted_keys: list[Path] = []  # release-signing public keys (PEM); several during a rotation
    min_release: Annotated[str, Meta(pattern=VERSION_PATTERN, max_length=64)] | None = None
    health_deadline_s: Annotated[float, Meta(gt=0, le=3600)] = 120.0
    max_trial_boots: Annotated[int, Meta(ge=1, le=20)] = 3
    download_timeout_s: Seconds = 30.0  # per read, not per download: a slow link still gets there


class EdgeConfig(_Section, kw_only=True, frozen=True):
    node: NodeConfig
    uplink: UplinkConfig
    outbox: OutboxConfig = OutboxConfig()
    controller: ControllerConfig | None = None
    gpio: GpioConfig | None = None
    cameras: Annotated[list[CameraConfig], Meta(max_length=64)] = []
    storage: StorageConfig = StorageConfig()
    http: HttpConfig = HttpConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    rules: RulesConfig = RulesConfig()
    ota: OtaConfig = OtaConfig()

    def __post_init__(self) -> None:
        if self.controller is not None and self.gpio is not None:
            raise ValueError("give [controller] (a pole controller on a UART) or [gpio], not both")
        ids = [c.id for c in self.cameras]
        doubles = sorted({i for i in ids if ids.count(i) > 1})
        if doubles:
            raise ValueError(f"cameras: ids must be unique, repeated: {doubles}")

    @property
    def outbox_path(self) -> Path:
        return self.node.state_dir / "outbox.db"


class ConfigError(ValueError):
    """The config file is unusable; `key` is the dotted path of the offending key (or None)."""

    def __init__(self, message: str, *, path: Path | None = None, key: str | None = None) -> None:
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{key + ': ' if key else ''}{message}")
        self.path = path
        self.key = key
        self.message = message


def load_config(path: Path) -> EdgeConfig:
    try:
        text = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read the config file: {error.strerror}", path=path) from None
    return parse_config(text, path=path)


def parse_config(text: bytes | str, *, path: Path | None = None) -> EdgeConfig:
    try:
        raw = text.decode() if isinstance(text, bytes) else text
        document = tomllib.loads(raw)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"not valid TOML: {error}", path=path) from None
    try:
        return msgspec.convert(document, EdgeConfig, dec_hook=_dec_hook)
    except msgspec.ValidationError as error:
        key, message = _explain(str(error))
        raise ConfigError(message, path=path, key=key) from None


# Keys the fleet may change on a running node ("set-config"): read afresh where they are used.
RUNTIME_KEYS = (
    "telemetry.interval_s",
    "telemetry.camera_probe_s",
    "rules.lamp_s",
    "rules.bookmark_window_s",
    "storage.interval_s",
)


def with_override(config: EdgeConfig, key: str, value: object) -> EdgeConfig:
    """`config` with one runtime key changed, validated as the file is; raises ConfigError."""
    if key not in RUNTIME_KEYS:
        raise ConfigError(f"cannot be changed at run time; accepted: {', '.join(RUNTIME_KEYS)}", key=key)
    document = msgspec.to_builtins(config, enc_hook=str)
    section, name = key.split(".")
    document[section][name] = value
    try:
        return msgspec.convert(document, EdgeConfig, dec_hook=_dec_hook)
    except msgspec.ValidationError as error:
        where, message = _explain(str(error))
        raise ConfigError(message, key=where) from None


def load_overrides(path: Path, config: EdgeConfig) -> tuple[EdgeConfig, list[str]]:
    """Apply the overrides the fleet set earlier (kept in the state directory as JSON). One that
    no longer validates (the file changed since) is skipped and said why: a pole must not stay
    offline over a telemetry interval."""
    try:
        overrides = msgspec.json.decode(path.read_bytes(), type=dict[str, str | int | float | bool])
    except FileNotFoundError:
        return config, []
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as error:
        return config, [f"{path}: unreadable, ignored: {error}"]
    skipped = []
    for key, value in overrides.items():
        try:
            config = with_override(config, key, value)
        except ConfigError as error:
            skipped.append(f"{path}: {error}; ignored")
    return config, skipped


def read_secret(path: Path, *, what: str) -> str:
    """A secret kept in its own file (mode 0600 on the node); the file's one line, stripped."""
    try:
        value = path.read_text().strip()
    except OSError as error:
        raise ConfigError(f"cannot read {what} from {path}: {error.strerror}") from None
    if not value:
        raise ConfigError(f"{what} file {path} is empty")
    return value


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(f"{kind} is not a config type")


# --- turning msgspec's messages into ones a technician can act on ------------------------------


def _explain(text: str) -> tuple[str | None, str]:
    """msgspec says `Expected `int`, got `str` - at `$.uplink.port``: split off the key, and
    where the key has a fixed set of values or a range, say which."""
    message, _, at = text.partition(" - at `")
    key = at.rstrip("`").removeprefix("$").lstrip(".") or None
    if message.startswith("Object contains unknown field"):
        field = message.split("`")[1]
        known = _fields_at(key)
        hint = f"; known keys here: {', '.join(known)}" if known else ""
        return (f"{key}.{field}" if key else field), f"unknown key{hint}"
    if message.startswith("Object missing required field"):
        field = message.split("`")[1]
        return (f"{key}.{field}" if key else field), "required key is missing"
    accepted = _accepted_at(key)
    if accepted:
        message = f"{message}; accepted: {accepted}"
    return key, message


def _type_at(key: str | None) -> Any:
    """The annotation of the config key at a dotted path (list indexes as `[n]`)."""
    current: Any = EdgeConfig
    if not key:
        return current
    for part in key.replace("[", ".[").split("."):
        if not part:
            continue
        current = _unwrap(current)
        if part.startswith("["):
            args = typing.get_args(current)
            current = args[0] if args else None
            continue
        if not (isinstance(current, type) and issubclass(current, msgspec.Struct)):
            return None
        hints = typing.get_type_hints(current, include_extras=True)
        current = hints.get(part)
    return current


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and `X | None` down to X."""
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, type(int | None)) and len(args) == 1:
        return _unwrap(args[0])
    return annotation


def _fields_at(key: str | None) -> list[str]:
    struct = _unwrap(_type_at(key))
    if isinstance(struct, type) and issubclass(struct, msgspec.Struct):
        return list(struct.__struct_fields__)
    return []


def _accepted_at(key: str | None) -> str | None:
    annotation = _type_at(key)
    if annotation is None:
        return None
    bounds = ""
    if typing.get_origin(annotation) is Annotated:
        for meta in typing.get_args(annotation)[1:]:
            if isinstance(meta, Meta):
                low = meta.ge if meta.ge is not None else meta.gt
                high = meta.le if meta.le is not None else meta.lt
                if low is not None or high is not None:
                    bounds = f"from {low} to {high}"
    inner = _unwrap(annotation)
    if typing.get_origin(inner) is Literal:
        return " or ".join(repr(v) for v in typing.get_args(inner))
    return bounds or None
