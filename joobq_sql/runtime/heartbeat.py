"""Renews the leases of every job this worker holds, so none is rescued while it is alive.

A job the store no longer lets us hold (its lease expired during a stall and it was rescued)
is reported through `on_lost`; its eventual finish is fenced out by the store.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any
from uuid import UUID

from .. import _validation as check
from ..store.base import Store

logger = logging.getLogger("joobq_sql.heartbeat")


class Heartbeat:
    def __init__(
        self,
        store: Store,
        *,
        worker_id: str,
        lease: float,
        interval: float,
        held_jids: Callable[[], set[UUID]],
        on_lost: Callable[[set[UUID]], None] | None = None,
        presence: Callable[[], None] | None = None,
        quiet: Callable[[], AbstractContextManager[None]] | None = None,
        unstarted_jids: Callable[[], set[UUID]] | None = None,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        # Checked here, not at the first beat: a lease no job row can hold would fail every
        # renewal, and an interval no thread can wait on would kill this one (OverflowError).
        self.lease = check.seconds(lease, what="lease", allow_zero=False)
        self.interval = check.seconds(
            interval, what="heartbeat interval", allow_zero=False, at_most=check.MAX_WAIT_SECONDS
        )
        self._held_jids = held_jids
        self._on_lost = on_lost
        self._presence = presence
        self._quiet = quiet or contextlib.nullcontext
        #: The held jobs still waiting to start (claimed, buffered): each renewal reports
        #: them, so a rescue of one that never started spends none of its retries.
        self._unstarted_jids = unstarted_jids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="joobq-heartbeat", daemon=True)
        self.beats = 0
        self.errors = 0
        self.presence_errors = 0
        self._presence_failing = False

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        """True while the renewal thread is alive (from start() until stop())."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def beat(self) -> None:
        """Renew the leases of the held jobs, then record this worker's presence. Renewal
        comes first and never depends on presence: a failed presence write is logged, not
        raised, and a failed renewal still lets presence be written."""
        try:
            self._renew()
        finally:
            self._mark_present()

    def _mark_present(self) -> None:
        """Best-effort: this worker is alive, even with nothing to renew (the workers table
        is for dashboards; a role without a grant on it must not stop lease renewal)."""
        if self._presence is None:
            return
        try:
            self._presence()
        except Exception as exc:
            self.presence_errors += 1
            if not self._presence_failing:  # once per outage, not every beat
                logger.warning(
                    "recording this worker's presence failed (%s); leases are still renewed", exc
                )
            self._presence_failing = True
            return
        if self._presence_failing:
            logger.info("recording this worker's presence works again")
        self._presence_failing = False

    def _renew(self) -> None:
        held = self._held_jids()
        if not held:
            return
        # Inside `quiet`, no acknowledgement of these jobs is written at the same time (see
        # Acker.quiet): no deadlock with it, and no job acknowledged meanwhile looks lost.
        with self._quiet():
            kept = self.store.renew_leases(self.worker_id, list(held), **self._renewal(held))
        self.beats += 1
        lost = held - kept
        if lost and self._on_lost is not None:
            # Re-check: a job finished and acknowledged since `held` was read is not lost.
            lost &= self._held_jids()
            if lost:
                self._on_lost(lost)

    def _renewal(self, held: set[UUID]) -> dict[str, Any]:
        """renew_leases' options. The unstarted set is read after `held`, so a job that
        started in between counts as started (the safe side: its rescue is charged)."""
        options: dict[str, Any] = {"lease": self.lease}
        if self._unstarted_jids is not None:
            options["unstarted"] = list(self._unstarted_jids() & held)
        return options

    def _loop(self) -> None:
        # The wait is clamped too: `interval` is a public attribute, and a wait beyond
        # threading.TIMEOUT_MAX raises in this thread, which would end the renewals for good.
        while not self._stop.wait(min(self.interval, check.MAX_WAIT_SECONDS)):
            try:
                self.beat()
            except Exception as exc:
                self.errors += 1
                logger.warning("renewing leases failed (%s); retrying in %.1fs", exc, self.interval)
