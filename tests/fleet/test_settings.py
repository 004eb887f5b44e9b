"""The fleet's settings: embedded defaults with no file, every key of docs/fleet.md accepted,
and a wrong key or value refused with the key named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.faults.sla import HOUR_MS
from fleet.settings import SettingsError, load_settings, parse_settings
from protocols import ota

DOCS = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"


def test_no_file_means_the_embedded_defaults() -> None:
    settings = load_settings(None)
    assert settings.database_url == "sqlite:///fleet-data/fleet.db"
    assert (settings.mqtt.host, settings.mqtt.port, settings.api.port) == ("127.0.0.1", 1883, 8080)
    policy = settings.sla_policy()
    assert (policy.response_ms, policy.resolution_ms["minor"]) == (2 * HOUR_MS, 8 * HOUR_MS)
    assert settings.fault_rules().debounce("offline").raise_after_s == 300
    assert not settings.escalations().enabled


def test_the_example_in_the_docs_is_valid(tmp_path: Path) -> None:
    example = re.search(r"```toml\n(.*?)```", DOCS.read_text(), re.S)
    assert example is not None
    (tmp_path / "smtp.password").write_text("s3cret-relay\n")
    release_key = Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key()
    (tmp_path / "release.pub").write_bytes(ota.public_key_pem(release_key))
    text = example.group(1).replace("/etc/watchpost/smtp.password", str(tmp_path / "smtp.password"))
    text = text.replace("/etc/watchpost/release-signing.pub", str(tmp_path / "release.pub"))
    settings = parse_settings(text)
    assert settings.mqtt.share_group == "fleet"
    assert settings.ota_config().public_url == "https://fleet.city.example"
    hooks = settings.escalations()
    assert hooks.webhook is not None
    assert hooks.email is not None
    assert (hooks.email.to_addrs, hooks.email.password) == (
        ("duty-manager@contractor.example",),
        "s3cret-relay",
    )


def test_hysteresis_per_kind_overrides_the_built_in_defaults() -> None:
    rules = parse_settings(
        "[faults]\noffline_raise_after_s = 0\n"
        "[faults.debounce.temperature]\nraise_after_s = 600\nclear_after_s = 1800\n"
    ).fault_rules()
    assert (rules.debounce("temperature").raise_after_s, rules.debounce("temperature").clear_after_s) == (
        600,
        1800,
    )
    assert rules.debounce("offline").raise_after_s == 0
    assert rules.debounce("camera").raise_after_s == 120  # untouched: the default


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('[mqtt]\nport = "mqtt"\n', "mqtt.port: Expected `int`, got `str`"),
        ("[mqtt]\nport = 70000\n", "mqtt.port: Expected `int` <= 65535"),
        ("[mqtt]\nhots = 'x'\n", "mqtt.hots: unknown key"),
        ("[fleet]\nhost_id = 'Fleet One'\n", "fleet.host_id: Expected `str` matching regex"),
        (
            "[faults]\nresolution_hours_major = 1.0\n",
            "faults: resolution_ms['major']=3600000 is not accepted",
        ),
        ("[faults.debounce.graffiti]\nraise_after_s = 1\nclear_after_s = 1\n", "per_kind='graffiti'"),
        ("[escalation.webhook]\nurl = 'ftp://x'\n", "escalation: webhook.url='ftp://x' is not accepted"),
        ("[escalation.email]\nhost = 'smtp'\n", "escalation: unknown key"),
        ("mqtt = = 1", "not valid TOML"),
    ],
)
def test_a_wrong_setting_is_refused_naming_its_key(text: str, said: str) -> None:
    with pytest.raises(SettingsError) as refused:
        parse_settings(text)
    assert said in str(refused.value)


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(tmp_path / "missing.toml")
    assert (
        str(refused.value)
        == f"{tmp_path / 'missing.toml'}: cannot read the settings file: No such file or directory"
    )


def test_ota_keys_are_read_at_start_and_the_defaults_follow_the_api(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key()
    (tmp_path / "release.pub").write_bytes(ota.public_key_pem(key))
    config = parse_settings(
        f'[ota]\ntrusted_keys = ["{tmp_path / "release.pub"}"]\ntick_s = 1.5\noffer_ttl_s = 600\n'
        '[api]\nhost = "10.0.0.5"\nport = 8443\n'
    ).ota_config()
    assert list(config.trusted_keys) == [ota.key_id(key)]
    assert (config.public_url, config.offer_ttl_ms) == ("http://10.0.0.5:8443", 600_000)
    assert config.artifact_dir == Path("fleet-data") / "ota"
    chosen = parse_settings('[ota]\npublic_url = "https://fleet.city.example/"\nartifact_dir = "/srv/ota"\n')
    assert (chosen.ota_config().public_url, chosen.ota_config().artifact_dir) == (
        "https://fleet.city.example",
        Path("/srv/ota"),
    )


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            '[ota]\ntrusted_keys = ["/nowhere/release.pub"]\n',
            "ota.trusted_keys: cannot read /nowhere/release.pub",
        ),
        (
            '[ota]\npublic_url = "fleet.city.example"\n',
            "ota.public_url: 'fleet.city.example' is not a base URL",
        ),
        ("[ota]\ntick_s = 0\n", "ota.tick_s: Expected `float` >= 0.1"),
        ("[ota]\nttl = 1\n", "ota.ttl: unknown key"),
    ],
)
def test_a_wrong_ota_setting_is_refused_naming_its_key(text: str, said: str) -> None:
    with pytest.raises(SettingsError) as refused:
        parse_settings(text)
    assert said in str(refused.value)


def test_a_trusted_key_that_is_not_one_names_its_file(tmp_path: Path) -> None:
    (tmp_path / "release.pub").write_text("not a key\n")
    with pytest.raises(SettingsError) as refused:
        parse_settings(f'[ota]\ntrusted_keys = ["{tmp_path / "release.pub"}"]\n')
    assert f"ota.trusted_keys: {tmp_path / 'release.pub'}: not a PEM public key" in str(refused.value)
