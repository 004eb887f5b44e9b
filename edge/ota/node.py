"""The OTA shell inside the agent: takes offers, runs one job at a time through the state
machine (edge.ota.state), persists it so a restart resumes it, runs the health gate of a
release on trial, and reports every step as an `OtaProgress` record through the outbox.

The agent (edge.agent) gives it a few hooks and runs `OtaNode.run()` as one of its tasks; a
job that has switched `current` raises RestartRequested out of that task, and the agent exits
for systemd to start the boot selector (edge.ota.boot) again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import importlib
import logging
import os
import random
import shutil
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec

from edge.config import ConfigError, EdgeConfig
from edge.ota import archive, crash, verify
from edge.ota.errors import OtaFailure, RestartRequested
from edge.ota.fetch import TransientFetchError, fetch, fetch_document
from edge.ota.files import StatePaths, read_struct, remove, write_atomic, write_struct
from edge.ota.health import Check, run_gate
from edge.ota.releases import ReleaseStore
from edge.ota.state import (
    Accept,
    Duplicate,
    IllegalTransition,
    Job,
    Outcome,
    Refuse,
    Trial,
    allowed,
    decide_offer,
    job_for,
    transition,
)
from protocols import messages as m
from protocols import ota

log = logging.getLogger(__name__)
T = TypeVar("T")

MANIFEST_MAX: Final = ota.MAX_DOCUMENT_BYTES
FETCH_ATTEMPTS: Final = 5  # in a row without a byte more on flash, then "download-failed"
CALL_POLL_S: Final = 1.0  # how often a verified release looks whether the bell call is over
PROGRESS_STEP: Final = 0.25  # report download progress at most this often (share of the file)


@dataclass(frozen=True, kw_only=True)
class AgentHooks:
    """What the OTA shell needs from the agent."""

    store: Callable[[m.Message], object]  # into the outbox
    flush: Callable[[], Awaitable[None]]  # ...and on flash when this returns
    self_test: Callable[[str], Awaitable[dict[str, Any]]]
    uplink_online: Callable[[], bool]
    controller_up: Callable[[], bool] | None  # None: no controller configured
    firmware_version: Callable[[], str | None]  # the controller's, from its HELLO
    # The version in the controller's next HELLO (ControllerLink.next_hello); None: no link.
    # (timeout_s, since: a time.monotonic() value after which a HELLO counts, or None)
    next_hello: Callable[[float, float | None], Coroutine[Any, Any, str | None]] | None = None
    # True while a citizen's bell call is under way (pressed, not yet answered, or the lamp
    # lit): the install waits, so no restart of agent or controller cuts into the call.
    bell_call_active: Callable[[], bool] = lambda: False


def running_release(environ: Mapping[str, str] = os.environ) -> str | None:
    """The release this process runs from, as the boot selector said (None: not from a
    release directory, e.g. a developer's checkout)."""
    directory = environ.get("WATCHPOST_RELEASE_DIR")
    return Path(directory).name if directory else None


class OtaNode:
    def __init__(
        self,
        config: EdgeConfig,
        hooks: AgentHooks,
        *,
        agent_version: str,
        clock_ms: Callable[[], int],
        release: str | None = None,
    ) -> None:
        self.config = config
        self.hooks = hooks
        self.agent_version = agent_version
        self.release = release  # the release directory this agent runs from
        self._clock_ms = clock_ms
        self.paths = StatePaths(config.node.state_dir)
        self.releases = ReleaseStore(config.ota.root)
        try:
            self.trusted = verify.load_trusted_keys(config.ota.trusted_keys)
        except ValueError as error:
            raise ConfigError(str(error), key="ota.trusted_keys") from None
        self.job: Job | None = read_struct(self.paths.job, Job)
        self._queue: asyncio.Queue[Job] = asyncio.Queue()

    # --- the agent's task -----------------------------------------------------------------------

    async def run(self) -> None:
        """Settle what the last run left (an outcome to report, a trial to judge, a job to
        resume), then run offered jobs one at a time."""
        # The job on disk, taken before the first await: an offer accepted while this settles
        # queues its own job, which must not be queued twice.
        resuming = self.job
        await self._report_outcome()
        trial = read_struct(self.paths.trial, Trial)
        committed = self.releases.committed()
        job = self.job if self.job is resuming else None
        if trial is not None and self.release == trial.release and committed != trial.release:
            await self._health_gate(trial)  # commits, or raises RestartRequested
        elif job is not None and job.component == "edge-agent" and job.release == committed == self.release:
            # Committed before a power cut, not yet reported.
            await self._finish_commit(
                job, campaign_id=job.campaign_id, release=job.release, previous=job.previous
            )
        elif job is not None:
            if job.state in ("restarting", "health-check"):
                # Switched to, yet this (older) release runs with no outcome to say why.
                state: m.OtaState = "failed" if job.state == "restarting" else "rolled-back"
                running = self.release or self.agent_version
                detail = f"the node runs {running}, not {job.release}, after its {job.state}"
                await self._end(job, state, "interrupted", detail)
            else:
                log.info("ota: resuming campaign %s (%s) from %s", job.campaign_id, job.release, job.state)
                self._queue.put_nowait(job)
        while True:
            job = await self._queue.get()
            if job is self.job:  # not one that ended while it waited
                await self._execute(job)

    def offer(self, offer: m.OtaOffer) -> None:
        """An `OtaOffer` from the fleet (called on the agent's loop)."""
        trial = read_struct(self.paths.trial, Trial)
        decision = decide_offer(
            offer,
            now_ms=self._clock_ms(),
            job=self.job,
            enabled=self.config.ota.enabled,
            trial_release=trial.release
            if trial is not None and trial.release != self.releases.committed()
            else None,
        )
        match decision:
            case Duplicate():
                log.info(
                    "ota: campaign %s offered again; it is %s", offer.campaign_id, self.job and self.job.state
                )
            case Refuse(reason=reason, detail=detail):
                log.warning(
                    "ota: offer of %s (campaign %s) refused: %s", offer.release, offer.campaign_id, detail
                )
                self._report(offer.campaign_id, offer.release, "failed", reason=reason, detail=detail)
            case Accept():
                job = job_for(offer, self._clock_ms())
                self._save(job)
                self._report(job.campaign_id, job.release, "notified")
                log.info(
                    "ota: campaign %s: release %s offered at %s",
                    job.campaign_id,
                    job.release,
                    job.manifest_url,
                )
                self._queue.put_nowait(job)

    # --- a job, step by step ---------------------------------------------------------------------

    async def _execute(self, job: Job) -> None:
        try:
            await self._steps(job)
            return
        except OtaFailure as failure:
            reason, detail = failure.reason, failure.detail
            log.error("ota: campaign %s failed: %s", job.campaign_id, failure)
        except RestartRequested:
            raise
        except Exception as error:  # a bug or an unexpected I/O error: the running release stays
            log.exception("ota: campaign %s failed unexpectedly", job.campaign_id)
            reason, detail = "install-failed", f"{type(error).__name__}: {error}"
        current = self.job or job
        try:
            await self._end(current, "failed", reason, detail)
        except IllegalTransition as error:
            log.error("ota: %s; dropping the job", error)
            self._clear_job()

    async def _steps(self, job: Job) -> None:
        if job.state == "notified":
            job = await self._advance(job, "downloading")
        if job.state == "downloading":
            manifest = await self._fetch_manifest(job)
            job = self._save(msgspec.structs.replace(job, component=manifest.component))
            running = self._running_version(manifest.component)
            if running == manifest.release and (
                manifest.component != "edge-agent" or self.releases.current() == manifest.release
            ):
                await self._end(job, "committed", None, f"release {manifest.release} is already running")
                return
            await self._fetch_artifact(job, manifest)
            job = await self._advance(job, "downloaded")
        manifest = self._saved_manifest(job)
        artifact = self._artifact_path(manifest)
        if job.state == "downloaded":
            await asyncio.to_thread(
                verify.check_file,
                artifact,
                size=manifest.artifact.size,
                sha256=manifest.artifact.sha256,
                what=manifest.artifact.path,
            )
            job = await self._advance(job, "verified")
            crash.checkpoint("verified")
        if job.state == "verified":
            await self._wait_for_the_call_to_end(job)
            job = await self._advance(job, "installing")
        if job.state == "installing":
            if manifest.component == "controller-firmware":
                await self._install_firmware(job, manifest, artifact)
                return
            await self._install_release(job, manifest, artifact)
            job = await self._advance(job, "restarting")
            crash.checkpoint("restarting")
            raise RestartRequested(f"release {job.release} installed: restarting into it")
        raise OtaFailure("interrupted", f"cannot resume a job in state {job.state}")

    async def _wait_for_the_call_to_end(self, job: Job) -> None:
        if not self.hooks.bell_call_active():
            return
        log.warning("ota: release %s verified; installing once the bell call is over", job.release)
        while self.hooks.bell_call_active():
            await asyncio.sleep(CALL_POLL_S)
        log.info("ota: the bell call is over; installing release %s", job.release)

    async def _advance(
        self, job: Job, state: m.OtaState, *, progress: float | None = None, detail: str = ""
    ) -> Job:
        job = self._save(transition(job, state))
        self._report(job.campaign_id, job.release, state, progress=progress, detail=detail)
        await self.hooks.flush()
        return job

    async def _end(self, job: Job, state: m.OtaState, reason: str | None, detail: str) -> None:
        """The job's last report, durable, then its files are gone."""
        if job.state != state:
            transition(job, state)  # refuses a move the machine does not allow
        self._report(job.campaign_id, job.release, state, reason=reason, detail=detail)
        await self.hooks.flush()
        self._clear_job()

    # --- downloading and checking ----------------------------------------------------------------

    async def _fetch_manifest(self, job: Job) -> ota.Manifest:
        # Small, and its size is not known before it arrives: fetched whole, up to the cap.
        timeout = self.config.ota.download_timeout_s
        document = await self._retrying(
            lambda: fetch_document(job.manifest_url, max_bytes=MANIFEST_MAX, timeout_s=timeout)
        )
        manifest = verify.check_document(
            document, expected_sha256=job.manifest_sha256, offered_release=job.release, trusted=self.trusted
        )
        verify.check_applicable(manifest, self._facts(manifest.component))
        if manifest.component == "controller-firmware" and not (
            self.config.controller and self.config.controller.console
        ):
            raise OtaFailure(
                "no-controller", "controller firmware needs controller.console (the controller's REPL port)"
            )
        write_atomic(self.paths.manifest, document)
        return manifest

    def _saved_manifest(self, job: Job) -> ota.Manifest:
        try:
            document = self.paths.manifest.read_bytes()
        except OSError:
            raise OtaFailure("interrupted", "the job's manifest is gone from the state directory") from None
        return verify.check_document(
            document, expected_sha256=job.manifest_sha256, offered_release=job.release, trusted=self.trusted
        )

    def _facts(self, component: str) -> verify.NodeFacts:
        if component == "controller-firmware":
            hardware = self.config.controller.hardware if self.config.controller else "none"
        else:
            hardware = self.config.node.hardware
        return verify.NodeFacts(
            hardware=hardware,
            running=self._running_version(component),
            min_release=self.config.ota.min_release,
        )

    def _running_version(self, component: str) -> str | None:
        if component == "controller-firmware":
            return self.hooks.firmware_version()
        return self.agent_version

    def _artifact_path(self, manifest: ota.Manifest) -> Path:
        return self.paths.downloads / manifest.artifact.path

    async def _fetch_artifact(self, job: Job, manifest: ota.Manifest) -> None:
        artifact = manifest.artifact
        dest = self._artifact_path(manifest)
        archive.check_space(
            self.paths.dir, artifact.size + archive.BLOCK, what=f"downloading {artifact.path}"
        )
        if dest.exists() and await asyncio.to_thread(verify.sha256_file, dest) == artifact.sha256:
            return  # fetched before a restart
        if manifest.delta is not None and await self._try_delta(job, manifest, dest):
            return
        base_url = job.manifest_url
        url = urllib.parse.urljoin(base_url, artifact.path)
        for attempt in (1, 2):
            await self._download(job, url, dest, size=artifact.size, report=True)
            try:
                await asyncio.to_thread(
                    verify.check_file, dest, size=artifact.size, sha256=artifact.sha256, what=artifact.path
                )
                return
            except OtaFailure as failure:
                # A resumed download may have joined two different files: once more, whole.
                dest.unlink(missing_ok=True)
                if attempt == 2:
                    raise failure from None
                log.warning("ota: %s; fetching it again from the start", failure)

    async def _try_delta(self, job: Job, manifest: ota.Manifest, dest: Path) -> bool:
        delta = manifest.delta
        assert delta is not None
        base = self.releases.artifact_of(delta.base_release)
        if not base.exists() or await asyncio.to_thread(verify.sha256_file, base) != delta.base_sha256:
            return False
        patch_path = self.paths.downloads / delta.path
        try:
            await self._download(
                job,
                urllib.parse.urljoin(job.manifest_url, delta.path),
                patch_path,
                size=delta.size,
                report=True,
            )
            await asyncio.to_thread(
                verify.check_file, patch_path, size=delta.size, sha256=delta.sha256, what=delta.path
            )
            await asyncio.to_thread(_apply_delta, base, patch_path, dest, manifest.artifact)
        except (OtaFailure, OSError, ValueError) as problem:
            log.warning(
                "ota: delta from %s not usable (%s): fetching the whole artifact", delta.base_release, problem
            )
            dest.unlink(missing_ok=True)
            return False
        finally:
            patch_path.unlink(missing_ok=True)
        log.info(
            "ota: %s rebuilt from %s with a %d-byte delta",
            manifest.artifact.path,
            delta.base_release,
            delta.size,
        )
        return True

    async def _download(self, job: Job, url: str, dest: Path, *, size: int, report: bool) -> None:
        loop = asyncio.get_running_loop()
        reported = [0.0]
        halfway = [False]

        def progress(got: int) -> None:
            if report and not halfway[0] and got * 2 >= size:
                halfway[0] = True
                crash.checkpoint("downloading")
            share = got / size
            if report and share - reported[0] >= PROGRESS_STEP and share < 1:
                reported[0] = share
                loop.call_soon_threadsafe(
                    functools.partial(
                        self._report, job.campaign_id, job.release, "downloading", progress=round(share, 2)
                    )
                )

        timeout = self.config.ota.download_timeout_s
        await self._retrying(lambda: fetch(url, dest, size=size, timeout_s=timeout, progress=progress))

    async def _retrying(self, attempt: Callable[[], T]) -> T:
        """Run a blocking fetch in a thread until it works, fails for good, or gets no further
        in FETCH_ATTEMPTS tries in a row (jittered backoff between them)."""
        best, stalled = -1, 0
        while True:
            try:
                return await asyncio.to_thread(attempt)
            except TransientFetchError as error:
                if error.got > best:
                    best, stalled = error.got, 0
                else:
                    stalled += 1
                if stalled >= FETCH_ATTEMPTS:
                    raise OtaFailure(
                        "download-failed", f"{error} ({FETCH_ATTEMPTS} attempts got no further)"
                    ) from None
                delay = random.uniform(0, 1.5 ** min(10, stalled))
                log.warning("ota: %s; trying again in %.1f s", error, delay)
                await asyncio.sleep(delay)

    # --- installing --------------------------------------------------------------------------------

    async def _install_release(self, job: Job, manifest: ota.Manifest, artifact: Path) -> None:
        """Side by side: extract, keep the tar, record the trial, switch `current`."""
        committed = self.releases.committed()
        release = manifest.release
        if release in (committed, self.releases.current()) and release != self.release:
            raise OtaFailure(
                "install-failed", f"release {release} is linked but not running; refusing to overwrite it"
            )
        self.releases.releases.mkdir(parents=True, exist_ok=True)
        # Earlier releases other than the running and committed ones make room first.
        await asyncio.to_thread(self.releases.prune, {r for r in (committed, self.release) if r})
        await asyncio.to_thread(
            archive.extract_release,
            artifact,
            manifest,
            self.releases.dir_of(release),
            checkpoint=crash.checkpoint,
        )
        await asyncio.to_thread(self.releases.keep_artifact, release, artifact)
        # The trial is written before the switch: a `current` without its trial is rolled back.
        self._save(msgspec.structs.replace(job, previous=committed))
        write_struct(
            self.paths.trial, Trial(campaign_id=job.campaign_id, release=release, previous=committed)
        )
        self.releases.switch("current", release)
        log.info("ota: release %s installed beside %s; current -> %s", release, committed, release)
        crash.checkpoint("switched")

    async def _install_firmware(self, job: Job, manifest: ota.Manifest, artifact: Path) -> None:
        controller = self.config.controller
        assert controller is not None  # checked with the manifest
        assert controller.console is not None
        files = await asyncio.to_thread(archive.read_files, artifact, manifest)
        try:
            # Imported when needed: only firmware jobs use it (and it drives the REPL, not the link).
            firmware_update: Any = importlib.import_module("edge.controller.firmware_update")
        except ImportError as error:
            raise OtaFailure(
                "not-supported", f"this agent cannot update controller firmware: {error}"
            ) from None
        loop = asyncio.get_running_loop()
        next_hello = self.hooks.next_hello

        # Both are called from the update's worker thread; the job and the link live on the loop.
        def progress(state: m.OtaState) -> None:
            asyncio.run_coroutine_threadsafe(self._firmware_progress(state), loop).result(30)

        # Every reset of the controller comes after the update started or after the previous
        # wait for a HELLO ended, so a HELLO decoded since then is the one asked for, even when
        # it came before the question (the controller can be up before the progress report
        # that precedes the wait is on flash).
        listening_since = [time.monotonic()]

        def first_frame_version(timeout_s: float) -> str | None:
            if next_hello is None:
                return None
            waiting = next_hello(timeout_s, listening_since[0])
            version = asyncio.run_coroutine_threadsafe(waiting, loop).result(timeout_s + 5)
            listening_since[0] = time.monotonic()
            return version

        firmware_files = [
            firmware_update.FirmwareFile(path=entry.path, data=files[entry.path], sha256=entry.sha256)
            for entry in manifest.files
        ]
        try:
            await asyncio.to_thread(
                firmware_update.update_firmware,
                controller.console,
                firmware_files,
                manifest.release,
                first_frame_version=first_frame_version,
                progress=progress,
                step=lambda name: crash.checkpoint(f"firmware-{name}"),
            )
        except firmware_update.FirmwareUpdateError as error:
            current = self.job or job
            # Once the controller was switched, whatever failed left it on its previous firmware.
            switched = current.state == "health-check"
            state: m.OtaState = "rolled-back" if error.rolled_back or switched else "failed"
            await self._end(current, state, error.reason, error.detail)
            return
        job = self.job or job
        await self._end(
            job, "committed", None, f"controller firmware {manifest.release} confirmed by its first frame"
        )

    async def _firmware_progress(self, state: m.OtaState) -> None:
        job = self.job
        if job is None or job.state == state or state not in allowed(job.state):
            return
        await self._advance(job, state)

    # --- after the restart: the health gate --------------------------------------------------------

    async def _health_gate(self, trial: Trial) -> None:
        job = self.job if self.job is not None and self.job.release == trial.release else None
        if job is not None:
            # A power cut between the switch and the "restarting" report lands here too.
            if job.state == "installing":
                job = await self._advance(job, "restarting")
            if job.state == "restarting":
                job = await self._advance(job, "health-check")
        log.info("ota: release %s on trial (boot %d): health check", trial.release, trial.boots)
        crash.checkpoint("health-check")
        verdict = await run_gate(self._checks, deadline_s=self.config.ota.health_deadline_s)
        if verdict.passed:
            self.releases.switch("committed", trial.release)
            crash.checkpoint("committing")
            log.info("ota: release %s passed its health check: committed", trial.release)
            await self._finish_commit(
                job, campaign_id=trial.campaign_id, release=trial.release, previous=trial.previous
            )
            return
        detail = f"release {trial.release} failed its health check: {verdict.detail}"
        log.error("ota: %s; rolling back to %s", detail, self.releases.committed())
        write_struct(
            self.paths.outcome,
            Outcome(
                campaign_id=trial.campaign_id,
                release=trial.release,
                state="rolled-back",
                reason="health-check",
                detail=detail[:2000],
            ),
        )
        committed = self.releases.committed()
        if committed is not None:
            self.releases.switch("current", committed)
        remove(self.paths.trial)
        raise RestartRequested(detail)

    async def _checks(self, seconds_left: float) -> list[Check]:
        checks = [
            Check("uplink", self.hooks.uplink_online(), "" if self.hooks.uplink_online() else "not connected")
        ]
        if self.hooks.controller_up is not None:
            up = self.hooks.controller_up()
            checks.append(Check("controller-link", up, "" if up else "controller not heard"))
        if not all(c.ok for c in checks):
            return checks
        tests = ["mqtt"] + (["bell-circuit"] if self.hooks.controller_up is not None else [])
        for name in tests:
            try:
                result = await self.hooks.self_test(name)
            except Exception as error:
                checks.append(Check(f"self-test {name}", False, f"{type(error).__name__}: {error}"))
                continue
            ok = bool(result.get("ok"))
            checks.append(
                Check(f"self-test {name}", ok, "" if ok else str(result.get("detail", result))[:300])
            )
        return checks

    async def _finish_commit(
        self, job: Job | None, *, campaign_id: str, release: str, previous: str | None
    ) -> None:
        detail = f"release {release} passed its health check"
        if job is not None:
            await self._end(job, "committed", None, detail)
        else:  # a trial without a job (provisioned by hand): still worth telling the fleet
            self._report(campaign_id, release, "committed", detail=detail)
            await self.hooks.flush()
        remove(self.paths.trial)
        if previous is not None:  # keep the one rolled back to; the older ones go
            with contextlib.suppress(OSError):
                await asyncio.to_thread(self.releases.prune, {release, previous})

    async def _report_outcome(self) -> None:
        outcome = read_struct(self.paths.outcome, Outcome)
        if outcome is None:
            return
        if outcome.release == self.release:
            return  # the boot selector finishes that rollback before this release runs again
        log.warning("ota: release %s %s: %s", outcome.release, outcome.state, outcome.detail)
        self._report(
            outcome.campaign_id, outcome.release, outcome.state, reason=outcome.reason, detail=outcome.detail
        )
        await self.hooks.flush()
        if self.job is not None and self.job.campaign_id == outcome.campaign_id:
            self._clear_job()
        remove(self.paths.outcome)

    # --- files and reports -------------------------------------------------------------------------

    def _save(self, job: Job) -> Job:
        write_struct(self.paths.job, job)
        self.job = job
        return job

    def _clear_job(self) -> None:
        self.job = None
        remove(self.paths.job)
        remove(self.paths.manifest)
        shutil.rmtree(self.paths.downloads, ignore_errors=True)

    def _report(
        self,
        campaign_id: str,
        release: str,
        state: m.OtaState,
        *,
        progress: float | None = None,
        reason: str | None = None,
        detail: str = "",
    ) -> None:
        self.hooks.store(
            m.OtaProgress(
                ts=self._clock_ms(),
                seq=0,
                campaign_id=campaign_id,
                release=release,
                state=state,
                progress=progress,
                reason=reason,
                detail=detail[:2000],
            )
        )


def _apply_delta(base: Path, patch: Path, dest: Path, artifact: ota.Artifact) -> None:
    import bsdiff4  # noqa: PLC0415  # only deltas need it

    data: bytes = bsdiff4.patch(base.read_bytes(), patch.read_bytes())
    if len(data) != artifact.size:
        raise ValueError(f"the patched artifact is {len(data)} bytes, the manifest says {artifact.size}")
    if hashlib.sha256(data).hexdigest() != artifact.sha256:
        raise ValueError("the patched artifact does not match the manifest's SHA-256")
    write_atomic(dest, data)
