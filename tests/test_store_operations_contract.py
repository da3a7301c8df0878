"""The Store's operator methods, on every store: unique jobs, search, retry and re-drive,
cancel, dead deletion, queue pauses and schedule ticks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from joobq_sql import DuplicateJobError, Failure, JobStatus, MemoryStore, NewJob, Store


@pytest.fixture(params=["postgres", "memory"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "postgres":
        return request.getfixturevalue("pg_store")
    return MemoryStore()


def new_job(n: int = 0, **overrides) -> NewJob:
    values = {"jid": uuid4(), "queue": "ops", "job_type": "OpsJob", "args": {"n": n}}
    values.update(overrides)
    return NewJob(**values)


def kill(store: Store, jid, *, max_retries_left: bool = False) -> None:
    """Run `jid` until it is dead (a failure with no retry)."""
    [record] = store.claim_jobs("ops", "w", 1)
    assert record.jid == jid
    store.fail_jobs([Failure(jid, record.attempt, "w", {"message": "boom"}, retry_in=None)])


# -- unique jobs -----------------------------------------------------------------------------


def test_a_second_unique_job_is_skipped_and_the_first_jid_returned(store: Store) -> None:
    first = store.enqueue_jobs([new_job(1, unique_key="report:42")])[0]
    second = store.enqueue_jobs([new_job(2, unique_key="report:42")])[0]
    assert second == first
    assert store.count_jobs("ops", JobStatus.ENQUEUED) == 1


def test_a_unique_duplicate_with_raise_stores_nothing_of_its_batch(store: Store) -> None:
    store.enqueue_jobs([new_job(1, unique_key="k")])
    with pytest.raises(DuplicateJobError, match="unique_key 'k'"):
        store.enqueue_jobs([new_job(2), new_job(3, unique_key="k", on_duplicate="raise")])
    assert store.count_jobs("ops", JobStatus.ENQUEUED) == 1


def test_unique_keys_are_per_job_type(store: Store) -> None:
    a = store.enqueue_jobs([new_job(1, unique_key="k")])[0]
    b = store.enqueue_jobs([new_job(2, unique_key="k", job_type="OtherJob")])[0]
    assert a != b


def test_a_unique_key_is_free_again_once_its_job_finished(store: Store) -> None:
    first = store.enqueue_jobs([new_job(1, unique_key="k")])[0]
    [claimed] = store.claim_jobs("ops", "w", 1)
    assert store.enqueue_jobs([new_job(2, unique_key="k")])[0] == first  # still running
    store.complete_jobs([claimed.completion])
    again = store.enqueue_jobs([new_job(3, unique_key="k")])[0]
    assert again != first


def test_duplicates_within_one_batch_collapse_to_the_first(store: Store) -> None:
    jobs = [new_job(1, unique_key="k"), new_job(2, unique_key="k"), new_job(3)]
    jids = store.enqueue_jobs(jobs)
    assert jids[1] == jids[0] == jobs[0].jid and jids[2] == jobs[2].jid
    assert store.queue_size("ops") == 2


def test_fifty_concurrent_enqueues_of_one_unique_key_make_one_job(store: Store) -> None:
    start = threading.Barrier(50)
    results: list = []
    lock = threading.Lock()

    def enqueue(n: int) -> None:
        start.wait()
        jid = store.enqueue_jobs([new_job(n, unique_key="only-one")])[0]
        with lock:
            results.append(jid)

    threads = [threading.Thread(target=enqueue, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 50 and len(set(results)) == 1
    assert store.queue_size("ops") == 1


# -- search ----------------------------------------------------------------------------------


def test_search_filters_by_queue_status_and_type_newest_first(store: Store) -> None:
    jids = store.enqueue_jobs(
        [new_job(1), new_job(2, queue="other"), new_job(3, job_type="OtherJob"), new_job(4)]
    )
    assert [r.jid for r in store.search_jobs(queue="ops")] == [jids[3], jids[2], jids[0]]
    assert [r.jid for r in store.search_jobs(job_type="OtherJob")] == [jids[2]]
    assert [r.jid for r in store.search_jobs(status=JobStatus.ENQUEUED, limit=2)] == [
        jids[3],
        jids[2],
    ]
    assert [r.jid for r in store.search_jobs(offset=3)] == [jids[0]]
    assert store.search_jobs(status=JobStatus.DEAD) == []


def test_search_refuses_bad_paging(store: Store) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.search_jobs(limit=0)
    with pytest.raises(ValueError, match="offset"):
        store.search_jobs(offset=-1)


# -- retry and re-drive ----------------------------------------------------------------------


def test_a_redriven_dead_job_runs_again_with_a_fresh_budget_and_its_errors(store: Store) -> None:
    jid = store.enqueue_jobs([new_job(1, max_retries=1)])[0]
    for attempt in (1, 2):
        [record] = store.claim_jobs("ops", "w", 1)
        store.fail_jobs([Failure(jid, attempt, "w", {"message": f"e{attempt}"}, retry_in=0)])
    assert store.get_job(jid).status is JobStatus.DEAD
    assert store.retry_jobs([jid]) == [jid]
    record = store.get_job(jid)
    assert (record.status, record.attempt, record.retries_left) == (JobStatus.ENQUEUED, 2, 1)
    assert [e["message"] for e in record.errors] == ["e1", "e2"]
    assert record.dead_reason is None and record.dead_expires_at is None
    # The fresh budget: 1 + max_retries more runs, with attempts that keep rising.
    outcomes = []
    for attempt in (3, 4):
        [claimed] = store.claim_jobs("ops", "w", 1)
        assert claimed.attempt == attempt
        outcomes.append(
            store.fail_jobs([Failure(jid, attempt, "w", {"message": f"e{attempt}"}, 0)])[jid]
        )
    assert outcomes == [JobStatus.RETRYING, JobStatus.DEAD]


def test_retry_makes_a_scheduled_job_due_now_and_leaves_others_alone(store: Store) -> None:
    later, waiting = store.enqueue_jobs([new_job(1, delay=3600), new_job(2)])
    assert store.retry_jobs([later, waiting, uuid4()]) == [later]
    assert store.queue_size("ops") == 2


def test_retry_dead_redrives_in_bulk(store: Store) -> None:
    jids = store.enqueue_jobs([new_job(i, max_retries=0) for i in range(3)])
    for jid in jids:
        kill(store, jid)
    store.enqueue_jobs([new_job(9, queue="elsewhere", max_retries=0)])
    assert sorted(store.retry_dead(queue="ops", limit=2) + store.retry_dead(queue="ops")) == sorted(
        jids
    )
    assert store.queue_size("ops") == 3
    assert store.retry_dead(queue="ops") == []


def test_a_redriven_expired_job_does_not_expire_again_at_once(store: Store) -> None:
    past = store.now() - timedelta(seconds=1)
    jid = store.enqueue_jobs([new_job(1, expires_at=past)])[0]
    store.expire_waiting_jobs()
    assert store.retry_jobs([jid]) == [jid]
    assert store.get_job(jid).expires_at is None
    assert [r.jid for r in store.claim_jobs("ops", "w", 1)] == [jid]


# -- cancel ----------------------------------------------------------------------------------


def test_cancelling_a_waiting_job_makes_it_dead_and_it_never_runs(store: Store) -> None:
    jid, other = store.enqueue_jobs([new_job(1), new_job(2, delay=3600)])
    assert store.cancel_jobs([jid, other]) == {jid: "cancelled", other: "cancelled"}
    record = store.get_job(jid)
    assert (record.status, record.dead_reason) == (JobStatus.DEAD, "cancelled")
    assert store.claim_jobs("ops", "w", 10) == []


def test_cancelling_a_running_job_raises_its_flag_for_its_worker(store: Store) -> None:
    jid, untouched = store.enqueue_jobs([new_job(1), new_job(2)])
    store.claim_jobs("ops", "w", 2)
    assert store.cancel_requested("w", [jid, untouched]) == set()
    assert store.cancel_jobs([jid]) == {jid: "requested"}
    assert store.cancel_requested("w", [jid, untouched]) == {jid}
    assert store.cancel_requested("someone-else", [jid]) == set()
    assert store.get_job(jid).status is JobStatus.RUNNING


def test_cancelling_a_finished_or_unknown_job_changes_nothing(store: Store) -> None:
    jid = store.enqueue_jobs([new_job(1, max_retries=0)])[0]
    kill(store, jid)
    assert store.cancel_jobs([jid, uuid4()]) == {}


# -- dead deletion and pauses -----------------------------------------------------------------


def test_delete_dead_removes_dead_jobs_now(store: Store) -> None:
    jids = store.enqueue_jobs([new_job(i, max_retries=0) for i in range(2)])
    for jid in jids:
        kill(store, jid)
    alive = store.enqueue_jobs([new_job(5)])[0]
    assert store.delete_dead(queue="ops") == 2
    assert store.get_job(alive) is not None and store.delete_dead() == 0


def test_pausing_and_resuming_queues(store: Store) -> None:
    assert store.paused_queues() == set()
    assert store.pause_queue("ops") is True
    assert store.pause_queue("ops") is False
    assert store.paused_queues() == {"ops"}
    assert store.queue_stats()["ops"].paused is True
    assert store.resume_queue("ops") is True
    assert store.resume_queue("ops") is False
    assert store.paused_queues() == set()


# -- schedule ticks --------------------------------------------------------------------------


def test_a_tick_enqueues_its_job_exactly_once(store: Store) -> None:
    tick = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert store.enqueue_tick("hourly-report", tick, new_job(1)) is True
    assert store.enqueue_tick("hourly-report", tick, new_job(2)) is False
    assert store.enqueue_tick("other-schedule", tick, new_job(3)) is True
    assert store.queue_size("ops") == 2
    assert store.last_ticks() == {"hourly-report": tick, "other-schedule": tick}


def test_concurrent_schedulers_enqueue_one_job_per_tick(store: Store) -> None:
    ticks = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s) for s in range(20)]
    start = threading.Barrier(4)

    def scheduler() -> None:
        start.wait()
        for tick in ticks:
            store.enqueue_tick("every-second", tick, new_job(0))

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.queue_size("ops") == 20


def test_prune_ticks_keeps_each_schedules_latest(store: Store) -> None:
    old = store.now() - timedelta(days=3)
    for s in range(3):
        store.enqueue_tick("a", old + timedelta(seconds=s), new_job(s))
    assert store.prune_ticks(older_than=86400) == 2
    assert store.last_ticks() == {"a": old + timedelta(seconds=2)}


def test_a_unique_scheduled_job_is_skipped_while_the_last_one_runs(store: Store) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert store.enqueue_tick("s", t0, new_job(1, unique_key="s")) is True
    assert store.enqueue_tick("s", t0 + timedelta(seconds=1), new_job(2, unique_key="s")) is False
    assert store.queue_size("ops") == 1
    assert store.last_ticks()["s"] == t0 + timedelta(seconds=1)


def test_a_dead_unique_job_is_not_redriven_while_its_key_is_held(store: Store) -> None:
    dead = store.enqueue_jobs([new_job(1, unique_key="k", max_retries=0)])[0]
    kill(store, dead)
    holder = store.enqueue_jobs([new_job(2, unique_key="k")])[0]
    assert holder != dead
    assert store.retry_jobs([dead]) == []
    assert store.retry_dead() == []
    assert store.get_job(dead).status is JobStatus.DEAD
    store.delete_jobs([holder])
    assert store.retry_jobs([dead]) == [dead]


def test_of_two_dead_jobs_with_one_key_only_the_oldest_is_redriven(store: Store) -> None:
    first = store.enqueue_jobs([new_job(1, unique_key="k", max_retries=0)])[0]
    kill(store, first)
    second = store.enqueue_jobs([new_job(2, unique_key="k", max_retries=0)])[0]
    kill(store, second)
    assert store.retry_jobs([second, first]) == [first]
    assert store.get_job(second).status is JobStatus.DEAD


# -- workers and throughput --------------------------------------------------------------------


def test_workers_are_seen_alive_and_forgotten_when_gone(store: Store) -> None:
    store.worker_seen("host:1:a", host="host", pid=1, queues=["ops", "mail"])
    store.worker_seen("host:2:b", host="host", pid=2, queues=["ops"])
    first = {w.worker_id: w for w in store.live_workers()}
    assert sorted(first) == ["host:1:a", "host:2:b"]
    assert first["host:1:a"].queues == ("ops", "mail") and first["host:1:a"].pid == 1
    store.worker_seen("host:1:a", host="host", pid=1, queues=["ops"])
    again = {w.worker_id: w for w in store.live_workers()}
    assert again["host:1:a"].started_at == first["host:1:a"].started_at
    assert again["host:1:a"].last_seen_at >= first["host:1:a"].last_seen_at
    assert again["host:1:a"].queues == ("ops",)
    store.worker_gone("host:2:b")
    assert [w.worker_id for w in store.live_workers()] == ["host:1:a"]


def test_completions_are_counted_per_queue_per_minute(store: Store) -> None:
    store.enqueue_jobs([new_job(i) for i in range(5)] + [new_job(9, queue="other")])
    claimed = store.claim_jobs("ops", "w", 5) + store.claim_jobs("other", "w", 5)
    store.complete_jobs([r.completion for r in claimed])
    per_minute = store.completed_per_minute(since=3600)
    assert {q: sum(m.values()) for q, m in per_minute.items()} == {"ops": 5, "other": 1}
    (minute,) = per_minute["ops"]
    assert minute.second == 0 and minute.microsecond == 0
    assert abs((store.now() - minute).total_seconds()) < 120
    assert store.prune_history(older_than=86400) == 0
