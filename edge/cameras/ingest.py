"""The node's local HTTP endpoint for video metadata: cameras and the NVR POST recording segments
and video events, edge.cameras.metadata checks them, an injected sink (the agent's durable
outbox) stores them, and only then does the sender hear 202. Stored segments feed the gap
detector (edge.cameras.gaps). Routes go on the agent's one edge.http Router, beside diagnostics.

The only module under edge/cameras/ that imports edge.http.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from edge.http import BodyTooLarge, Request, Response, Router, json_response
from protocols.messages import RecordingSegment

from .clock import epoch_ms
from .errors import IngestRejected
from .gaps import GapDetector, GapPolicy, RecordingGap
from .metadata import VideoRecord, parse_push

log = logging.getLogger(__name__)

PUSH_PATH = "/api/v1/video-metadata"
TOKEN_HEADER = "X-Watchpost-Token"
MAX_BODY_BYTES = 1024 * 1024  # 1,000 records with long details and bookmarks, pretty-printed
RETRY_AFTER_S = 5

# Stores a push whole, durably, or raises (outbox full, disk full): the sender then retries.
MetadataSink = Callable[[list[VideoRecord]], Awaitable[None]]
GapListener = Callable[[RecordingGap], None]


@dataclass
class IngestCounters:
    """For the diagnostics page. `rejections` is keyed by IngestRejected.reason (a short code);
    the latest rejection's words are kept for the technician looking at a misconfigured NVR."""

    pushes: int = 0  # pushes stored and answered 202
    records: int = 0  # records in them
    segments: int = 0
    events: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    last_rejection: str = ""
    unavailable: int = 0  # pushes answered 503: the sink could not store them
    last_unavailable: str = ""
    gaps: int = 0  # recording gaps reported to the agent


class MetadataIngest:
    """Mount with `ingest.add_routes(router)` on the agent's `edge.http.Router`.

    `accept` is awaited with every record of a push at once and must store them all or raise;
    the push is answered 202 only after it returns, 503 with Retry-After if it raises, so a
    push is never half stored and never lost silently. Delivery is at least once: a sender that
    misses the 202 sends the push again. `on_gap` hears each recording gap once; call
    `settle_gaps()` on the agent's tick so a gap is reported even when no segment follows it.
    """

    def __init__(
        self,
        *,
        camera_ids: Iterable[str],
        accept: MetadataSink,
        on_gap: GapListener | None = None,
        clock: Callable[[], int] = epoch_ms,
        gap_policy: GapPolicy | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        token: str | None = None,
        token_header: str = TOKEN_HEADER,
        retry_after_s: int = RETRY_AFTER_S,
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes {max_body_bytes} is not allowed: use 1 or more")
        if token is not None and len(token) < 16:
            raise ValueError("the ingest token is too short to be a secret: use 16 or more characters")
        if retry_after_s < 1:
            raise ValueError(f"retry_after_s {retry_after_s} is not allowed: use 1 or more seconds")
        self.camera_ids = frozenset(camera_ids)
        self._accept = accept
        self._on_gap = on_gap
        self._clock = clock
        self.max_body_bytes = max_body_bytes
        self._token = None if token is None else token.encode()
        self.token_header = token_header
        self.retry_after_s = retry_after_s
        self.gaps = GapDetector(self.camera_ids, started_at_ms=clock(), policy=gap_policy)
        self._counters = IngestCounters()

    def add_routes(self, router: Router) -> None:
        router.post(PUSH_PATH, self.handle_push)

    def counters(self) -> IngestCounters:
        """A snapshot."""
        return dataclasses.replace(self._counters, rejections=dict(self._counters.rejections))

    def settle_gaps(self) -> list[RecordingGap]:
        """Report the gaps that are due now; returns them too."""
        return self._report(self.gaps.settle(self._clock()))

    def not_recording(self) -> list[str]:
        """Cameras that pushed no segment ending within the gap policy's `stale_after_ms`."""
        return self.gaps.not_recording(self._clock())

    async def handle_push(self, request: Request) -> Response:
        outcome = self._records(request)
        if isinstance(outcome, IngestRejected):
            return self._reject(outcome)
        try:
            await self._accept(outcome)
        except Exception as exc:
            # Whatever the sink's trouble, the push is not stored: the sender must keep it and
            # try again. A bug in the sink shows up here too, so log it with its traceback.
            log.warning("video metadata push of %d records not stored", len(outcome), exc_info=True)
            self._counters.unavailable += 1
            self._counters.last_unavailable = f"not stored: {exc}"
            return json_response(
                {"error": f"not stored, try again later: {exc}", "reason": "unavailable"},
                status=503,
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self._count_accepted(outcome)
        now_ms = self._clock()
        gaps: list[RecordingGap] = []
        for record in outcome:
            if isinstance(record, RecordingSegment):
                gaps += self.gaps.add(record, now_ms)
        self._report(gaps)
        return json_response({"accepted": len(outcome)}, status=202)

    def _records(self, request: Request) -> list[VideoRecord] | IngestRejected:
        refused = self._check_headers(request)
        if refused is not None:
            return refused
        body = self._body(request)
        if isinstance(body, IngestRejected):
            return body
        return parse_push(body, self.camera_ids)

    def _check_headers(self, request: Request) -> IngestRejected | None:
        if self._token is not None:
            given = request.headers.get(self.token_header, "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, self._token):
                return IngestRejected(
                    401,
                    "unauthorized",
                    f"missing or wrong {self.token_header} header: send the node's ingest token",
                )
        if request.content_type != "application/json" or (request.charset or "utf-8").lower() != "utf-8":
            given_type = request.headers.get("Content-Type")
            said = "no Content-Type" if given_type is None else f"Content-Type {given_type!r}"
            return IngestRejected(
                415, "wrong-content-type", f"{said} is not accepted: send application/json (UTF-8)"
            )
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            return self._too_large(f"{length} bytes")
        return None

    def _body(self, request: Request) -> bytes | IngestRejected:
        # The server's own limit is a little above ours; a chunked body has no Content-Length
        # to check beforehand, so it is checked here once read (or cut off by the server).
        try:
            body = request.body
        except BodyTooLarge as error:
            if error.size is not None:
                return self._too_large(f"{error.size} bytes")
            return self._too_large(f"over {min(error.limit, self.max_body_bytes)} bytes")
        if len(body) > self.max_body_bytes:
            return self._too_large(f"over {self.max_body_bytes} bytes")
        return body

    def _too_large(self, size: str) -> IngestRejected:
        return IngestRejected(
            413,
            "too-large",
            f"the body is {size}, at most {self.max_body_bytes} are accepted: send smaller batches",
        )

    def _reject(self, rejected: IngestRejected) -> Response:
        counters = self._counters
        counters.rejections[rejected.reason] = counters.rejections.get(rejected.reason, 0) + 1
        counters.last_rejection = f"{rejected.status} {rejected.reason}: {rejected.detail}"
        log.info(
            "video metadata push rejected (%d %s): %s", rejected.status, rejected.reason, rejected.detail
        )
        response = json_response(
            {"error": rejected.detail, "reason": rejected.reason}, status=rejected.status
        )
        if rejected.status == 413:
            # The rest of an oversized body may still be on its way: do not read it on this
            # connection, close it (RFC 9110 section 15.5.14).
            response.close = True
        return response

    def _count_accepted(self, records: list[VideoRecord]) -> None:
        counters = self._counters
        segments = sum(isinstance(record, RecordingSegment) for record in records)
        counters.pushes += 1
        counters.records += len(records)
        counters.segments += segments
        counters.events += len(records) - segments

    def _report(self, gaps: list[RecordingGap]) -> list[RecordingGap]:
        for gap in gaps:
            self._counters.gaps += 1
            if self._on_gap is None:
                continue
            try:
                self._on_gap(gap)
            except Exception:
                # The push is stored and answered; a failing listener must not turn it into an error.
                log.exception("recording gap listener failed for %s", gap)
        return gaps
