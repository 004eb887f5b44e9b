"""`watchpost firmware deploy` against the simulated pole controller, with a stand-in firmware."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.sim.conftest import WATCHPOST, SimulatedController
from watchpost.deploy import (
    EXIT_HASH,
    EXIT_SETUP,
    EXIT_VERSION,
    FirmwareSourceError,
    FirmwareStoppedError,
    HashMismatchError,
    ReadyTimeoutError,
    collect_firmware,
    deploy,
    find_mpremote,
    firmware_version,
    link_codec_path,
    slot_files,
    verify_hashes,
)

REPO = Path(__file__).resolve().parents[2]


def stand_in_firmware(root: Path, *, version: str = "9.9.9", announces: str | None = None) -> Path:
    """A tiny firmware whose main.py announces itself like the real one."""
    source = root / "firmware"
    (source / "drivers").mkdir(parents=True)
    (source / "version.py").write_text(f'# release\nFIRMWARE_VERSION = "{version}"\n')
    (source / "drivers" / "lamp.py").write_text("ON = 1\n")
    (source / "main.py").write_text(
        "import link\n"
        "from drivers import lamp\n"
        "cause = open('/.reset_cause').read().strip()\n"
        f"print('watchpost-controller {announces or version} ready reset=' + cause)\n"
    )
    return source


def run_deploy(port: Path | str, source: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WATCHPOST), "firmware", "deploy", "--port", str(port), "--source", str(source), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.micropython
def test_deploy_copies_verifies_and_sees_the_controller_ready(
    controller: SimulatedController, tmp_path: Path
) -> None:
    source = stand_in_firmware(tmp_path)
    result = run_deploy(controller.console, source)
    assert result.returncode == 0, result.stderr
    assert "watchpost-controller 9.9.9 ready reset=soft" in result.stdout
    assert "/drivers/lamp.py" in result.stdout
    # The slot layout: the firmware in /a, the boot selector as /main.py, /slot saying "a".
    for name in ("main.py", "version.py", "drivers/lamp.py"):
        assert (controller.flash / "a" / name).read_bytes() == (source / name).read_bytes()
    assert (controller.flash / "a" / "link.py").read_bytes() == (REPO / "protocols" / "link.py").read_bytes()
    assert (controller.flash / "main.py").read_bytes() == (REPO / "firmware" / "selector.py").read_bytes()
    assert (controller.flash / "slot").read_text() == "a"


@pytest.mark.micropython
def test_the_real_firmware_deploys_and_comes_back_reporting_its_version(
    controller: SimulatedController,
) -> None:
    version = firmware_version(REPO / "firmware")
    result = run_deploy(controller.console, REPO / "firmware")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"watchpost-controller {version} ready reset=soft" in result.stdout
    for source in (REPO / "firmware").glob("*.py"):
        installed = "main.py" if source.name == "selector.py" else f"a/{source.name}"
        assert (controller.flash / installed).read_bytes() == source.read_bytes()


@pytest.mark.micropython
def test_deploy_fails_when_another_version_comes_up(controller: SimulatedController, tmp_path: Path) -> None:
    source = stand_in_firmware(tmp_path, announces="9.9.8")
    result = run_deploy(controller.console, source)
    assert result.returncode == EXIT_VERSION
    assert "came up with firmware 9.9.8, expected 9.9.9" in result.stderr


@pytest.mark.micropython
def test_a_file_altered_on_the_device_is_named(controller: SimulatedController, tmp_path: Path) -> None:
    source = stand_in_firmware(tmp_path)
    report = deploy(str(controller.console), source=source, ready_timeout=10)
    expected = {f.device_path: f.sha256 for f in report.files}
    verify_hashes(find_mpremote(), str(controller.console), expected)  # a clean copy passes

    (controller.flash / "a" / "drivers" / "lamp.py").write_text("ON = 0\n")  # flash corruption
    with pytest.raises(HashMismatchError, match=r"/a/drivers/lamp\.py") as caught:
        verify_hashes(find_mpremote(), str(controller.console), expected)
    assert set(caught.value.mismatches) == {"/a/drivers/lamp.py"}
    assert caught.value.exit_code == EXIT_HASH


@pytest.mark.micropython
def test_firmware_that_stops_or_hangs_before_ready_fails(
    controller: SimulatedController, tmp_path: Path
) -> None:
    source = stand_in_firmware(tmp_path)
    (source / "main.py").write_text("print('starting')\n")
    with pytest.raises(FirmwareStoppedError, match="starting"):
        deploy(str(controller.console), source=source, ready_timeout=10)

    (source / "main.py").write_text("import time\nprint('starting')\nwhile True:\n    time.sleep(0.01)\n")
    with pytest.raises(ReadyTimeoutError, match=r"within 1 s"):
        deploy(str(controller.console), source=source, ready_timeout=1)


def test_a_missing_port_is_reported(tmp_path: Path) -> None:
    result = run_deploy(tmp_path / "ttyACM9", stand_in_firmware(tmp_path))
    assert result.returncode == EXIT_SETUP
    assert f"serial port {tmp_path / 'ttyACM9'} does not exist" in result.stderr


def test_the_version_is_read_without_importing(tmp_path: Path) -> None:
    source = stand_in_firmware(tmp_path, version="1.2.3")
    (source / "version.py").write_text('raise SystemExit\nFIRMWARE_VERSION = "1.2.3"\n')
    assert firmware_version(source) == "1.2.3"
    (source / "version.py").write_text("VERSION = 3\n")
    with pytest.raises(FirmwareSourceError, match="FIRMWARE_VERSION"):
        firmware_version(source)


def test_the_link_codec_goes_beside_the_firmware(tmp_path: Path) -> None:
    source = stand_in_firmware(tmp_path)
    paths = [f.device_path for f in collect_firmware(source, link_codec_path())]
    assert paths == ["/a/drivers/lamp.py", "/a/main.py", "/a/version.py", "/a/link.py", "/main.py"]
    (source / "link.py").write_text("")
    with pytest.raises(FirmwareSourceError, match="collides"):
        collect_firmware(source, link_codec_path())


def test_slot_files_are_one_slot_without_the_boot_selector(tmp_path: Path) -> None:
    files = slot_files()
    assert {"main.py", "version.py", "controller.py", "link.py"} <= set(files)
    assert "selector.py" not in files
    assert not any(path.startswith("/") for path in files)
    assert files["link.py"] == (REPO / "protocols" / "link.py").read_bytes()
    assert firmware_version(REPO / "firmware") in files["version.py"].decode()
    stand_in = slot_files(stand_in_firmware(tmp_path))
    assert sorted(stand_in) == ["drivers/lamp.py", "link.py", "main.py", "version.py"]
