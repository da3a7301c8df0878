"""The runtime model test: the whole runtime (JoobQ workers, their fetchers, heartbeats,
acknowledgers, timeouts, maintenance, scheduler, and the seed API) over a real PostgreSQL,
under a seeded plan of faults, checked against the invariants users trust:

- every job reaches a final state (and the one its story explains), none stays running
  without a live lease;
- no two runs of one job overlap while the first one's lease was valid and its process alive;
- a job whose cancel was reported "cancelled" never starts afterwards, and a running job asked
  to cancel is never retried;
- every schedule tick is enqueued at most once (and a misfire='skip' schedule skips missed
  ticks);
- `attempt` never decreases; a stale finish changes nothing.

The short version runs in the suite (threads only, about 20 s). The long one (`faults`, `slow`)
runs more jobs, more workers, and worker processes that it SIGKILLs, about two minutes a seed:
it runs when asked for, with `-m faults` or JOOBQ_MODEL_LONG=1, so the suite stays fast.
What is injected, and how the invariants are read, is in tests/runtime_model_support.py,
runtime_model_faults.py and runtime_model_check.py.

A failure prints its seed and the command that replays it:
    JOOBQ_MODEL_SEED=<seed> python -m pytest tests/test_runtime_model.py -k short
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.runtime_model_support import ModelConfig, ModelRun

#: Seeds of the suite's runs; JOOBQ_MODEL_SEED replaces them (one seed, or several: "3,7").
SHORT_SEEDS = [20240613]
LONG_SEEDS = [1, 2]


def _seeds(default: list[int]) -> list[int]:
    configured = os.environ.get("JOOBQ_MODEL_SEED")
    if configured:
        return [int(s) for s in configured.replace(",", " ").split()]
    return default


def _without() -> tuple[str, ...]:
    """JOOBQ_MODEL_WITHOUT: plan actions or events to leave out ("hostile_row,stall_worker"),
    to tell which part of a plan a failure needs."""
    return tuple(s for s in os.environ.get("JOOBQ_MODEL_WITHOUT", "").replace(",", " ").split())


def _run(
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    config: ModelConfig,
    test: str,
) -> None:
    # The runtime logs every injected fault it meets; the report below says what matters.
    caplog.set_level(logging.CRITICAL, logger="joobq_sql")
    config.without = _without()
    result = ModelRun(database_url, config, tmp_path).run()
    command = (
        f"JOOBQ_MODEL_SEED={config.seed} python -m pytest tests/test_runtime_model.py -k {test}"
    )
    if test == "long":
        command = f"JOOBQ_MODEL_LONG=1 {command}"
    if config.without:
        command = f"JOOBQ_MODEL_WITHOUT={','.join(config.without)} {command}"
    report = tmp_path / "runtime-model-report.txt"
    result.write(report, command)
    if result.violations:
        pytest.fail(f"{result.report(command)}\n\nfull report: {report}", pytrace=False)
    print(result.report(command))


@pytest.mark.parametrize("seed", _seeds(SHORT_SEEDS))
def test_runtime_model_short(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, seed: int
) -> None:
    """Three thread workers (and a fourth that knows a new job type), 15 s of faults."""
    _run(database_url, tmp_path, caplog, ModelConfig(seed=seed), "short")


@pytest.mark.faults
@pytest.mark.slow
@pytest.mark.skipif(
    # A string condition, evaluated with the pytest config at collection: it sees -m.
    "'faults' not in (config.getoption('markexpr') or '') "
    "and not os.environ.get('JOOBQ_MODEL_LONG')",
    reason="the long runtime model runs with -m faults or JOOBQ_MODEL_LONG=1",
)
@pytest.mark.parametrize("seed", _seeds(LONG_SEEDS))
def test_runtime_model_long(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, seed: int
) -> None:
    """Four thread workers and three worker processes, SIGKILLed and replaced every few
    seconds, 60 s of faults."""
    config = ModelConfig(
        seed=seed,
        name="long",
        duration=60.0,
        thread_workers=4,
        process_workers=3,
        kill_every=6.0,
        wave_every=0.4,
        wave_size=(5, 10),
        drain_timeout=60.0,
    )
    _run(database_url, tmp_path, caplog, config, "long")
