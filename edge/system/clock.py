"""Whether the kernel thinks its clock is synchronised, asked through libc's adjtimex (read
only): the kernel's own view, which every NTP client (timesyncd, chrony, ntpd) updates, and no
D-Bus or systemd needed. The only module under edge/ that uses ctypes; edge.system.read falls
back to timedatectl when this is unavailable."""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

TIME_ERROR = 5  # adjtimex's return value when the clock is not synchronised
STA_UNSYNC = 0x0040  # status bit: the clock is not synchronised


@dataclass(frozen=True, slots=True)
class KernelClock:
    """What adjtimex returned (the clock state, TIME_OK..TIME_ERROR) and the timex status bits."""

    state: int
    status: int

    @property
    def synced(self) -> bool:
        return self.state != TIME_ERROR and not self.status & STA_UNSYNC


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class _Timex(ctypes.Structure):
    # Linux's struct timex as libc's plain `adjtimex` symbol takes it: `long` fields and a
    # `long` timeval, so the one layout is right on 64-bit and on 32-bit ARM alike.
    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        # The kernel's reserved tail, and then some: a larger buffer than needed costs nothing.
        ("_reserved", ctypes.c_int * 32),
    )


def read_kernel_clock() -> KernelClock:
    """Ask the kernel (modes 0: read, change nothing). Raises OSError when it cannot be asked:
    not Linux, no such libc function, or the call refused."""
    if not sys.platform.startswith("linux"):
        raise OSError(f"adjtimex is Linux-only; this is {sys.platform}")
    libc = ctypes.CDLL(None, use_errno=True)
    adjtimex = getattr(libc, "adjtimex", None) or getattr(libc, "ntp_adjtime", None)
    if adjtimex is None:
        raise OSError("libc has neither adjtimex nor ntp_adjtime")
    timex = _Timex(modes=0)
    state = adjtimex(ctypes.byref(timex))
    if state == -1:
        errno = ctypes.get_errno()
        raise OSError(errno, f"adjtimex: {os.strerror(errno)}")
    return KernelClock(state=int(state), status=int(timex.status))
