"""The fleet manager's settings: one TOML file, checked whole at start-up, so a typo stops
`watchpost fleet serve` with the key named instead of surfacing at the first fault.

With no file at all the fleet runs embedded: SQLite under `data_dir`, MQTT on localhost, no
time series, the API on 127.0.0.1:8080. Secrets (the MQTT password, the time-series token) are
read from files named here. Every key, with its default: docs/fleet.md.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from fleet.escalations.errors import SettingsError as EscalationSettingsError
from fleet.escalations.settings import EmailSettings, EscalationSettings, WebhookSettings
from fleet.faults.errors import ConfigError as FaultConfigError
from fleet.faults.rules import OFFLINE, Debounce, FaultRulesConfig
from fleet.faults.sla import HOUR_MS, MINUTE_MS, SlaPolicy
from fleet.ota.releases import OtaConfig
from protocols.ota import key_id, parse_public_key
from protocols.topics import ID_PATTERN

Port = Annotated[int, Meta(ge=1, le=65535)]
Seconds = Annotated[int, Meta(ge=1, le=7 * 86_400)]
Hours = Annotated[float, Meta(gt=0, le=24 * 30)]


class SettingsError(ValueError):
    """The settings are unusable: `key` is the dotted path of the offending key (or None)."""

    def __init__(self, message: str, *, key: str | None = None, path: Path | None = None) -> None:
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{key + ': ' if key else ''}{message}")
        self.key = key


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class FleetSection(_Section, kw_only=True, frozen=True):
    host_id: Annotated[str, Meta(pattern=ID_PATTERN)] = "fleet-1"  # in the retained host state
    data_dir: Path = Path("fleet-data")  # the embedded SQLite database lives here


class DatabaseSection(_Section, kw_only=True, frozen=True):
    url: str = ""  # empty: sqlite under fleet.data_dir; production: postgresql+psycopg://...


class MqttSection(_Section, kw_only=True, frozen=True):
    enabled: bool = True
    host: Annotated[str, Meta(min_length=1, max_length=253)] = "127.0.0.1"
    port: Port = 1883
    username: str | None = None
    password_file: Path | None = None
    share_group: Annotated[str, Meta(pattern=ID_PATTERN)] | None = None  # several workers, one load


class ApiSection(_Section, kw_only=True, frozen=True):
    host: str = "127.0.0.1"
    port: Port = 8080
    # Where `serve` writes the first admin token when the database has none (mode 0600).
    admin_token_file: Path | None = None


class TimeSeriesSection(_Section, kw_only=True, frozen=True):
    url: str = ""  # an InfluxDB /api/v2/write base URL; empty: no time series
    org: str = "watchpost"
    bucket: str = "watchpost"
    token_file: Path | None = None


class DebounceSection(_Section, kw_only=True, frozen=True):
    raise_after_s: Annotated[int, Meta(ge=0, le=7 * 86_400)]
    clear_after_s: Annotated[int, Meta(ge=0, le=7 * 86_400)]


class FaultsSection(_Section, kw_only=True, frozen=True):
    heartbeat_timeout_s: Seconds = 180
    # A node must stay offline this long before its fault opens (a mobile link's hiccup is
    # not a site visit); 0 opens it at the death.
    offline_raise_after_s: Annotated[int, Meta(ge=0, le=86_400)] = 300
    response_hours: Hours = 2.0
    resolution_hours_critical: Hours = 3.0
    resolution_hours_major: Hours = 4.0
    resolution_hours_minor: Hours = 8.0
    report_hours: Hours = 24.0
    # Hysteresis per fault kind (an event category or "offline"), over the built-in defaults
    # (docs/faults.md): [faults.debounce.temperature] raise_after_s = 600, clear_after_s = 1800
    debounce: dict[str, DebounceSection] = {}


class OtaSection(_Section, kw_only=True, frozen=True):
    # Release-signing public keys (PEM, as `watchpost ota keygen` writes them): an upload is
    # kept only when one of these signed it.
    trusted_keys: list[Path] = []
    artifact_dir: Path | None = None  # where releases are kept; default <fleet.data_dir>/ota
    # The fleet's base URL as nodes reach it, in every offer's manifest URL; default
    # http://<api.host>:<api.port> (this machine's name when the API listens on every address).
    public_url: str = ""
    tick_s: Annotated[float, Meta(ge=0.1, le=3600)] = 5.0  # the campaign runner's pace
    offer_ttl_s: Seconds = 86_400  # an offer's `expires_at`, after it is sent


class FleetSettings(_Section, kw_only=True, frozen=True):
    fleet: FleetSection = FleetSection()
    database: DatabaseSection = DatabaseSection()
    mqtt: MqttSection = MqttSection()
    api: ApiSection = ApiSection()
    timeseries: TimeSeriesSection = TimeSeriesSection()
    faults: FaultsSection = FaultsSection()
    escalation: dict[str, Any] = {}  # fleet.escalations settings, checked by them
    ota: OtaSection = OtaSection()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.fleet.data_dir / 'fleet.db'}"

    def sla_policy(self) -> SlaPolicy:
        f = self.faults
        return SlaPolicy(
            response_ms=round(f.response_hours * HOUR_MS),
            resolution_ms={
                "critical": round(f.resolution_hours_critical * HOUR_MS),
                "major": round(f.resolution_hours_major * HOUR_MS),
                "minor": round(f.resolution_hours_minor * HOUR_MS),
            },
            report_ms=round(f.report_hours * HOUR_MS),
            at_risk_ms=30 * MINUTE_MS,
        )

    def fault_rules(self) -> FaultRulesConfig:
        defaults = FaultRulesConfig()
        offline = dataclasses.replace(
            defaults.debounce(OFFLINE), raise_after_s=self.faults.offline_raise_after_s
        )
        chosen = {
            kind: Debounce(raise_after_s=d.raise_after_s, clear_after_s=d.clear_after_s)
            for kind, d in self.faults.debounce.items()
        }
        return FaultRulesConfig(
            heartbeat_timeout_s=self.faults.heartbeat_timeout_s,
            per_kind={**defaults.per_kind, OFFLINE: offline, **chosen},
        )

    def ota_config(self) -> OtaConfig:
        """The [ota] table as the release shelf and the campaign runner take it: the trusted
        keys read and parsed (a bad one names its file)."""
        keys = {}
        for path in self.ota.trusted_keys:
            try:
                key = parse_public_key(path.read_bytes())
            except OSError as error:
                raise SettingsError(f"cannot read {path}: {error.strerror}", key="ota.trusted_keys") from None
            except ValueError as error:
                raise SettingsError(f"{path}: {error}", key="ota.trusted_keys") from None
            keys[key_id(key)] = key
        url = self.ota.public_url
        if not url:
            host = self.api.host
            if host in ("", "0.0.0.0", "::"):
                host = socket.getfqdn()  # listening everywhere: nodes reach it by name
            url = f"http://{f'[{host}]' if ':' in host else host}:{self.api.port}"
        elif not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
            raise SettingsError(
                f"{url!r} is not a base URL like https://fleet.city.example", key="ota.public_url"
            )
        return OtaConfig(
            trusted_keys=keys,
            artifact_dir=self.ota.artifact_dir or self.fleet.data_dir / "ota",
            public_url=url.rstrip("/"),
            offer_ttl_ms=self.ota.offer_ttl_s * 1000,
        )

    def escalations(self) -> EscalationSettings:
        """The [escalation] table as the escalation hooks take it (checked by them)."""
        raw = dict(self.escalation)
        try:
            webhook = raw.pop("webhook", None)
            email = raw.pop("email", None)
            if email is not None:
                email = dict(email)
                if "to_addrs" in email and isinstance(email["to_addrs"], list):
                    email["to_addrs"] = tuple(email["to_addrs"])
                if "password_file" in email:
                    path = email.pop("password_file")
                    email["password"] = read_secret(Path(path), key="escalation.email.password_file")
            return EscalationSettings(
                webhook=WebhookSettings(**webhook) if webhook is not None else None,
                email=EmailSettings(**email) if email is not None else None,
                **raw,
            )
        except EscalationSettingsError as error:
            raise SettingsError(str(error), key="escalation") from None
        except TypeError as error:  # a key the hooks do not have
            raise SettingsError(f"unknown key: {error}", key="escalation") from None


def parse_settings(text: str | bytes, *, path: Path | None = None) -> FleetSettings:
    try:
        raw = text.decode() if isinstance(text, bytes) else text
        document = tomllib.loads(raw)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SettingsError(f"not valid TOML: {error}", path=path) from None
    try:
        settings = msgspec.convert(document, FleetSettings, dec_hook=_dec_hook)
    except msgspec.ValidationError as error:
        message, _, at = str(error).partition(" - at `")
        key = at.rstrip("`").removeprefix("$").lstrip(".") or None
        if message.startswith(("Object contains unknown field", "Object missing required field")):
            field = message.split("`")[1]
            key = f"{key}.{field}" if key else field
            message = "unknown key" if "unknown" in message else "required key is missing"
        raise SettingsError(message, key=key, path=path) from None
    try:
        # The contract's budgets must make sense together (a resolution after the response).
        settings.sla_policy()
        settings.fault_rules()
    except FaultConfigError as error:
        raise SettingsError(str(error), key="faults", path=path) from None
    try:
        settings.escalations()
        settings.ota_config()
    except SettingsError as error:
        raise SettingsError(str(error), path=path) from None
    return settings


def load_settings(path: Path | None) -> FleetSettings:
    if path is None:
        return FleetSettings()
    try:
        text = path.read_bytes()
    except OSError as error:
        raise SettingsError(f"cannot read the settings file: {error.strerror}", path=path) from None
    return parse_settings(text, path=path)


def _dec_hook(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(f"{kind} from {type(value).__name__}")


def read_secret(path: Path | None, *, key: str) -> str | None:
    """A secret from its file (trailing newline dropped); None when no file is set."""
    if path is None:
        return None
    try:
        return path.read_text().strip()
    except OSError as error:
        raise SettingsError(f"cannot read {path}: {error.strerror}", key=key) from None
