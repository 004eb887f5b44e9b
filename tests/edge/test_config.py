"""The agent's config: the documented example is valid, and every kind of mistake is named by
its key with what would be accepted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
MINIMAL = '[node]\nid = "pole-1"\nsite_id = "site-1"\n[uplink]\nhost = "localhost"\n'


def documented_examples() -> list[str]:
    text = (REPO / "docs" / "edge.md").read_text()
    return re.findall(r"```toml\n(.*?)```", text, re.DOTALL)


def test_the_documented_config_is_valid_and_means_what_it_says() -> None:
    full, gpio = documented_examples()
    config = parse_config(full)
    assert config.node.id == "pole-0412"
    assert config.uplink.tls
    assert config.uplink.port == 8883
    assert config.controller is not None
    assert config.controller.port == "/dev/ttyAMA0"
    assert [c.id for c in config.cameras] == ["cam-north"]
    assert config.outbox.commit_interval_ms == 100
    assert config.controller.console == "/dev/ttyACM0"
    assert config.controller.hardware == "rp2040-pico"
    assert config.ota.root == Path("/opt/watchpost")
    assert len(config.ota.trusted_keys) == 2  # a key rotation: old and new pinned
    assert config.ota.min_release == "1.0.0"
    gpio_config = parse_config(full.split("[controller]")[0] + gpio)
    assert gpio_config.gpio is not None
    assert gpio_config.gpio.bell_pin == 17


def test_defaults_of_a_minimal_config() -> None:
    config = parse_config(MINIMAL)
    assert config.uplink.port == 1883
    assert config.outbox.max_records == 1_000_000
    assert config.http.pin_file is None
    assert config.controller is None
    assert config.gpio is None
    assert config.outbox_path == Path("/var/lib/watchpost/outbox.db")
    assert config.ota.enabled
    assert config.ota.trusted_keys == []
    assert (config.ota.health_deadline_s, config.ota.max_trial_boots) == (120.0, 3)
    assert config.ota.min_release is None


@pytest.mark.parametrize(
    ("extra", "key", "says"),
    [
        ("[uplink]\nport = 0\n", "uplink.port", None),  # duplicate table: TOML error
        ('[outbox]\nmax_records = "many"\n', "outbox.max_records", "Expected `int`, got `str`"),
        ("[outbox]\ncommit_interval_ms = 250\n", "outbox.commit_interval_ms", "accepted: from 1 to 100"),
        (
            "[telemetry]\nintervals = 5\n",
            "telemetry.intervals",
            "known keys here: interval_s, camera_probe_s",
        ),
        ("[gpio]\nbell_pin = 40\ndoor_pin = 2\nlamp_pin = 3\n", "gpio.bell_pin", "accepted: from 0 to 27"),
        (
            '[[cameras]]\nid = "c1"\nname = "n"\nhost = "h"\nprobe = "onvif"\n',
            "cameras[0].probe",
            "'rtsp' or 'tcp'",
        ),
        ('[[cameras]]\nname = "n"\nhost = "h"\n', "cameras[0].id", "required key is missing"),
        ('[ota]\nmin_release = "latest"\n', "ota.min_release", "Expected `str` matching"),
        ("[ota]\nmax_trial_boots = 0\n", "ota.max_trial_boots", "accepted: from 1 to 20"),
        (
            '[controller]\nport = "/dev/ttyAMA0"\n[gpio]\nbell_pin = 1\ndoor_pin = 2\nlamp_pin = 3\n',
            None,
            "not both",
        ),
    ],
)
def test_mistakes_name_the_key_and_the_accepted_values(extra: str, key: str | None, says: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(MINIMAL + extra)
    if says is None:
        assert "not valid TOML" in str(caught.value)
        return
    assert caught.value.key == key or key is None
    assert says in str(caught.value)


def test_uplink_tls_files_need_tls_and_come_in_pairs() -> None:
    with pytest.raises(ConfigError, match=re.escape("cert_file and uplink.key_file go together")):
        parse_config(MINIMAL + 'tls = true\ncert_file = "/etc/c.pem"\n')
    with pytest.raises(ConfigError, match=re.escape("need uplink.tls = true")):
        parse_config(MINIMAL + 'ca_file = "/etc/ca.pem"\n')


def test_a_missing_or_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the config file"):
        load_config(tmp_path / "absent.toml")
    (tmp_path / "bad.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


toml_scalars = st.one_of(
    st.integers(-(2**40), 2**40), st.text(max_size=20), st.booleans(), st.floats(allow_nan=False)
)
sections = st.sampled_from(
    ["node", "uplink", "outbox", "http", "telemetry", "rules", "storage", "gpio", "junk"]
)


@given(
    st.dictionaries(
        sections,
        st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), toml_scalars, max_size=4),
        max_size=5,
    )
)
def test_any_document_is_a_config_or_a_config_error(document: dict[str, dict[str, object]]) -> None:
    lines = []
    for section, values in document.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            text = json.dumps(value) if isinstance(value, bool | str) else repr(value)
            lines.append(f"{key} = {text}")
    try:
        parse_config("\n".join(lines))
    except ConfigError as error:
        outcome = str(error)
    else:
        outcome = "a valid config"
    assert outcome
