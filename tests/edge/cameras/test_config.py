"""Camera config (edge.cameras.config): what the agent's TOML loader may build, and the words for
what it may not."""

from __future__ import annotations

from typing import Any

import pytest

from edge.cameras.config import CameraConfig, cameras_by_id
from edge.cameras.errors import CameraConfigError
from protocols.messages import CameraInfo


def test_defaults_are_an_rtsp_probe_on_port_554() -> None:
    camera = CameraConfig(camera_id="cam-1", name="Corner north", host="192.0.2.10")
    assert (camera.port, camera.probe, camera.model) == (554, "rtsp", None)


def test_hosts_may_be_names_or_addresses() -> None:
    for host in ("cam-1.local", "camera", "192.0.2.10", "fd00::10", "CAM-2.example.org."):
        assert CameraConfig(camera_id="cam-1", name="x", host=host).host == host


def test_the_birth_gets_id_name_and_model() -> None:
    camera = CameraConfig(
        camera_id="cam-2", name="Bus stop", host="cam-2.local", model="Axis P1465-LE", probe="tcp"
    )
    assert camera.info() == CameraInfo(camera_id="cam-2", name="Bus stop", model="Axis P1465-LE")


GOOD: dict[str, Any] = {"camera_id": "cam-1", "name": "Corner north", "host": "192.0.2.10"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "camera_id",
            "Cam 1",
            "camera_id 'Cam 1' is not allowed: use 1 to 64 of a-z, 0-9, '.', '_', '-',"
            " starting with a letter or digit",
        ),
        ("camera_id", "", "camera_id '' is not allowed"),
        ("name", "", "camera 'cam-1': name '' is not allowed: use a text of 1 to 128 characters"),
        (
            "host",
            "rtsp://192.0.2.10/",
            "camera 'cam-1': host 'rtsp://192.0.2.10/' is not allowed: use a host name",
        ),
        ("host", "192.0.2.10:554", "host '192.0.2.10:554' is not allowed"),
        ("host", "", "host '' is not allowed"),
        ("port", 0, "camera 'cam-1': port 0 is not allowed: use a TCP port from 1 to 65535 (RTSP is 554)"),
        ("port", 70000, "port 70000 is not allowed"),
        ("port", "554", "port '554' is not allowed"),
        ("port", True, "port True is not allowed"),
        ("probe", "ping", "camera 'cam-1': probe 'ping' is not allowed: use one of 'rtsp', 'tcp'"),
        ("model", "", "model '' is not allowed: leave it out or use a text of 1 to 128 characters"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(field: str, value: object, message: str) -> None:
    with pytest.raises(CameraConfigError) as raised:
        CameraConfig(**{**GOOD, field: value})
    assert message in str(raised.value)
    assert (raised.value.field, raised.value.value) == (field, value)
    assert isinstance(raised.value, ValueError)  # a loader catching ValueError sees it


def test_two_cameras_with_one_id_are_refused() -> None:
    cameras = [CameraConfig(**GOOD), CameraConfig(**{**GOOD, "host": "192.0.2.11"})]
    with pytest.raises(CameraConfigError, match="each camera needs its own camera_id"):
        cameras_by_id(cameras)
    assert list(cameras_by_id(cameras[:1])) == ["cam-1"]
