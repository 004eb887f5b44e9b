"""The diagnostics PIN and the session tokens handed out for it (no I/O, time injected).

A 4-6 digit PIN is guessable by trying them all, so wrong PINs in a row lock login for a while,
for everyone: the service interface is a cable in a pole cabinet, and a technician locked out
for five minutes is a smaller harm than a guessed PIN. edge.diagnostics.server calls this.
"""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from .errors import LockedOut, NotAuthorized, WrongPin

MIN_PIN_LENGTH = 4
MAX_FAILURES = 5  # wrong PINs in a row that lock login
LOCKOUT_S = 300
TOKEN_TTL_S = 12 * 3600  # a working day on site
MAX_SESSIONS = 16  # live tokens kept; logging in beyond that ends the oldest session


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Session:
    token: str
    expires_in_s: int


class PinGate:
    """`gate.login(pin)` returns a Session or raises WrongPin / LockedOut; `gate.check(token)`
    returns None or raises NotAuthorized. `clock` is monotonic seconds."""

    def __init__(
        self,
        pin: str,
        *,
        clock: Callable[[], float],
        max_failures: int = MAX_FAILURES,
        lockout_s: int = LOCKOUT_S,
        token_ttl_s: int = TOKEN_TTL_S,
        max_sessions: int = MAX_SESSIONS,
        make_token: Callable[[], str] = new_token,
    ) -> None:
        if len(pin.strip()) < MIN_PIN_LENGTH:
            raise ValueError(f"the diagnostics PIN must have at least {MIN_PIN_LENGTH} characters")
        if max_failures < 1:
            raise ValueError(f"max_failures {max_failures} is not allowed: use 1 or more")
        if lockout_s < 1 or token_ttl_s < 1:
            raise ValueError("lockout_s and token_ttl_s must be 1 second or more")
        if max_sessions < 1:
            raise ValueError(f"max_sessions {max_sessions} is not allowed: use 1 or more")
        self._pin = pin.encode("utf-8", "surrogatepass")
        self._clock = clock
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.token_ttl_s = token_ttl_s
        self.max_sessions = max_sessions
        self._make_token = make_token
        self._failures = 0
        self._locked_until: float | None = None
        self._sessions: dict[str, float] = {}  # token -> expiry on the clock
        self.lockouts = 0

    def login(self, pin: str) -> Session:
        now = self._clock()
        if self._locked_until is not None:
            if now < self._locked_until:
                raise LockedOut(retry_after_s=math.ceil(self._locked_until - now))
            self._locked_until = None
            self._failures = 0
        if not hmac.compare_digest(pin.encode("utf-8", "surrogatepass"), self._pin):
            self._failures += 1
            if self._failures >= self.max_failures:
                self._locked_until = now + self.lockout_s
                self.lockouts += 1
                raise LockedOut(retry_after_s=self.lockout_s, just_now=True)
            raise WrongPin(attempts_left=self.max_failures - self._failures, lockout_s=self.lockout_s)
        self._failures = 0
        self._forget_expired(now)
        while len(self._sessions) >= self.max_sessions:
            oldest = min(self._sessions, key=self._sessions.__getitem__)
            del self._sessions[oldest]
        token = self._make_token()
        self._sessions[token] = now + self.token_ttl_s
        return Session(token=token, expires_in_s=self.token_ttl_s)

    def check(self, token: str | None) -> None:
        if not token:
            raise NotAuthorized(
                "no-token", "send Authorization: Bearer <token>, the token from POST /diag/api/login"
            )
        known = self._find(token)
        if known is None:
            raise NotAuthorized("unknown-token", "the token is not known (the node restarted?): log in again")
        if self._clock() >= self._sessions[known]:
            del self._sessions[known]
            raise NotAuthorized(
                "expired-token", f"the session ended after {self.token_ttl_s // 3600} h: log in again"
            )

    def logout(self, token: str) -> bool:
        known = self._find(token)
        if known is None:
            return False
        del self._sessions[known]
        return True

    def sessions(self) -> int:
        self._forget_expired(self._clock())
        return len(self._sessions)

    def _find(self, token: str) -> str | None:
        # Compared in constant time against each live token, not looked up by hash.
        given = token.encode("utf-8", "surrogatepass")
        found = None
        for known in self._sessions:
            if hmac.compare_digest(given, known.encode()):
                found = known
        return found

    def _forget_expired(self, now: float) -> None:
        for token in [t for t, expiry in self._sessions.items() if now >= expiry]:
            del self._sessions[token]
