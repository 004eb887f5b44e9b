"""read_system (edge.system.read) over fixture trees of real files, with its commands and the
kernel clock injected; and once over this machine's own /proc, checked against what the OS says
through other means."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.system import KernelClock, SystemReadings, Throttling, read_kernel_clock, read_system
from edge.system.read import MEMINFO, THERMAL_ZONE, THROTTLED_SYSFS, UPTIME
from protocols.messages import Readings

FIXTURES = Path(__file__).parent / "fixtures"
COMMANDS = FIXTURES / "commands"
SYNCED = KernelClock(state=0, status=0x2001)
ON_LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and adjtimex are Linux's")


class Commands:
    """A `run` that answers from captured outputs and records what was asked."""

    def __init__(self, answers: dict[str, str | BaseException] | None = None) -> None:
        self.answers = answers or {}
        self.asked: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        self.asked.append(tuple(argv))
        answer = self.answers.get(argv[0], FileNotFoundError(errno.ENOENT, "No such file", argv[0]))
        if isinstance(answer, BaseException):
            raise answer
        return answer


def no_kernel_clock() -> KernelClock:
    raise OSError(errno.EPERM, "Operation not permitted")


@pytest.fixture
def pi_root(tmp_path: Path) -> Path:
    """A Pi's files: the published Pi captures plus this VM's /proc (a Pi's would read alike)."""
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / "raspberry-pi", root)
    shutil.copytree(FIXTURES / "vm-x86_64", root, dirs_exist_ok=True)
    return root


def test_everything_read_from_a_fixture_tree(pi_root: Path, tmp_path: Path) -> None:
    run = Commands()
    sample = read_system(root=pi_root, data_dir=tmp_path, run=run, kernel_clock=lambda: SYNCED)
    meminfo = (pi_root / MEMINFO).read_text()
    assert sample.uptime_s == float((pi_root / UPTIME).read_text().split()[0])
    assert sample.cpu_temp_c == 44.388
    assert sample.throttling == Throttling(0x50000)
    assert sample.throttled is False
    assert sample.memory is not None
    assert f"MemTotal: {sample.memory.total_kib} kB" in " ".join(meminfo.split())
    assert f"MemAvailable: {sample.memory.available_kib} kB" in " ".join(meminfo.split())
    assert sample.disk_free_bytes is not None
    assert sample.disk_free_bytes > 0
    assert sample.clock_synced is True
    assert sample.reasons == ()
    assert run.asked == []  # the sysfs file answered: no vcgencmd, and the kernel knew the clock


def test_fill_sets_the_readings_fields_and_they_pass_the_wire_contract(pi_root: Path, tmp_path: Path) -> None:
    sample = read_system(root=pi_root, data_dir=tmp_path, run=Commands(), kernel_clock=lambda: SYNCED)
    assert sample.uptime_s is not None
    assert sample.mem_used_pct is not None
    readings = sample.fill(Readings(outbox_backlog=3, cpu_temp_c=99.0))
    assert readings.uptime_s == int(sample.uptime_s)
    assert readings.cpu_temp_c == 44.4
    assert readings.throttled is False
    assert readings.mem_used_pct == round(sample.mem_used_pct, 1)
    assert readings.disk_free_bytes == sample.disk_free_bytes
    assert readings.clock_synced is True
    assert readings.outbox_backlog == 3  # not the system's field: kept
    # Constraints (Count, Celsius, Percent) are checked when decoding, as the fleet does.
    assert msgspec.json.decode(msgspec.json.encode(readings), type=Readings) == readings


def test_unreadable_values_are_sent_absent(tmp_path: Path) -> None:
    sample = read_system(root=tmp_path, data_dir=tmp_path, run=Commands(), kernel_clock=no_kernel_clock)
    readings = sample.fill(Readings(cpu_temp_c=50.0, throttled=True))
    assert readings.cpu_temp_c is None
    assert readings.throttled is None
    assert readings.uptime_s is None
    assert readings.clock_synced is None


def test_throttling_falls_back_to_vcgencmd(pi_root: Path, tmp_path: Path) -> None:
    (pi_root / THROTTLED_SYSFS).unlink()
    run = Commands({"vcgencmd": (COMMANDS / "vcgencmd-get_throttled-0x50005.stdout").read_text()})
    sample = read_system(root=pi_root, data_dir=tmp_path, run=run, kernel_clock=lambda: SYNCED)
    assert run.asked == [("vcgencmd", "get_throttled")]
    assert sample.throttling == Throttling(0x50005)
    assert sample.throttled is True
    assert sample.reasons == ()


def test_a_garbled_sysfs_file_also_falls_back(pi_root: Path, tmp_path: Path) -> None:
    (pi_root / THROTTLED_SYSFS).write_text("\x00\xff junk")
    run = Commands({"vcgencmd": (COMMANDS / "vcgencmd-get_throttled-0x0.stdout").read_text()})
    sample = read_system(root=pi_root, data_dir=tmp_path, run=run, kernel_clock=lambda: SYNCED)
    assert sample.throttling == Throttling(0)


def test_no_throttling_source_gives_none_and_says_what_was_tried(pi_root: Path, tmp_path: Path) -> None:
    (pi_root / THROTTLED_SYSFS).unlink()
    sample = read_system(root=pi_root, data_dir=tmp_path, run=Commands(), kernel_clock=lambda: SYNCED)
    assert sample.throttling is None
    assert sample.throttled is None
    (reason,) = sample.reasons
    assert reason.startswith("throttled: ")
    assert str(pi_root / THROTTLED_SYSFS) in reason
    assert "vcgencmd get_throttled: not installed" in reason


def test_clock_sync_falls_back_to_timedatectl(pi_root: Path, tmp_path: Path) -> None:
    run = Commands({"timedatectl": "yes\n"})
    sample = read_system(root=pi_root, data_dir=tmp_path, run=run, kernel_clock=no_kernel_clock)
    assert sample.clock_synced is True
    assert run.asked == [("timedatectl", "show", "-p", "NTPSynchronized", "--value")]
    skipped = read_system(
        root=pi_root, data_dir=tmp_path, run=Commands({"timedatectl": "no\n"}), kernel_clock=None
    )
    assert skipped.clock_synced is False


def test_no_clock_source_gives_none_with_both_reasons(pi_root: Path, tmp_path: Path) -> None:
    # What this project's VM answered (fixtures/commands): exit status 1 and an explanation.
    failed = subprocess.CalledProcessError(
        1,
        ["timedatectl"],
        output=(COMMANDS / "timedatectl-no-systemd.stdout").read_text(),
        stderr=(COMMANDS / "timedatectl-no-systemd.stderr").read_text(),
    )
    sample = read_system(
        root=pi_root, data_dir=tmp_path, run=Commands({"timedatectl": failed}), kernel_clock=no_kernel_clock
    )
    assert sample.clock_synced is None
    (reason,) = sample.reasons
    assert reason.startswith("clock_synced: adjtimex: Operation not permitted; ")
    assert "exit status 1: System has not been booted with systemd" in reason


def test_a_command_that_hangs_is_a_reason(pi_root: Path, tmp_path: Path) -> None:
    hung = subprocess.TimeoutExpired(["timedatectl"], 2.0)
    sample = read_system(
        root=pi_root, data_dir=tmp_path, run=Commands({"timedatectl": hung}), kernel_clock=no_kernel_clock
    )
    assert sample.clock_synced is None
    assert "no answer within 2 s" in sample.reasons[0]


def test_an_empty_root_reads_nothing_and_says_why(tmp_path: Path) -> None:
    missing_data_dir = tmp_path / "not-created"
    sample = read_system(
        root=tmp_path, data_dir=missing_data_dir, run=Commands(), kernel_clock=no_kernel_clock
    )
    assert sample == SystemReadings(reasons=sample.reasons)
    named = [reason.split(":")[0] for reason in sample.reasons]
    assert named == ["uptime_s", "cpu_temp_c", "throttled", "mem_used_pct", "disk_free_bytes", "clock_synced"]
    assert str(tmp_path / THERMAL_ZONE) in sample.reasons[1]
    assert str(missing_data_dir) in sample.reasons[4]


FILES = [UPTIME, THERMAL_ZONE, THROTTLED_SYSFS, MEMINFO]


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(contents=st.lists(st.binary(max_size=200), min_size=len(FILES), max_size=len(FILES)))
def test_arbitrary_file_contents_never_raise(contents: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        for relative, content in zip(FILES, contents, strict=True):
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_bytes(content)
        sample = read_system(root=root, data_dir=root, run=Commands(), kernel_clock=lambda: SYNCED)
        sample.fill()  # and whatever was read fits Readings
        assert all(reason for reason in sample.reasons)


# -- this machine


@ON_LINUX
def test_this_machine_has_uptime_and_memory(tmp_path: Path) -> None:
    booted_before = time.clock_gettime(time.CLOCK_BOOTTIME)
    sample = read_system(root=Path("/"), data_dir=tmp_path)
    booted_after = time.clock_gettime(time.CLOCK_BOOTTIME)
    assert sample.uptime_s is not None
    # /proc/uptime is CLOCK_BOOTTIME in hundredths of a second.
    assert booted_before - 0.01 <= sample.uptime_s <= booted_after + 0.01
    assert sample.memory is not None
    # MemTotal is the kernel's totalram, which sysconf reports in pages.
    assert sample.memory.total_kib * 1024 == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < sample.memory.available_kib <= sample.memory.total_kib
    assert sample.disk_free_bytes is not None
    assert 0 < sample.disk_free_bytes <= shutil.disk_usage(tmp_path).total
    assert all(not reason.startswith(("uptime_s", "mem_used_pct")) for reason in sample.reasons)


@ON_LINUX
def test_this_kernel_answers_adjtimex() -> None:
    clock = read_kernel_clock()
    assert 0 <= clock.state <= 5  # TIME_OK .. TIME_ERROR
    assert isinstance(clock.synced, bool)
