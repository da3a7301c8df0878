"""copy_text: the COPY rows of a bulk enqueue, whose shared text is made once per run of rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from joobq_sql import NewJob
from joobq_sql.store.postgres.copy_text import ROWS_PER_WRITE, copy_text

NOW = datetime(2026, 12, 4, 10, 30, 0, 123456, tzinfo=UTC)


def fields(rows: list[NewJob], runnable: set[str] | None = None) -> list[list[str]]:
    text = "".join(copy_text(rows, NOW, set() if runnable is None else runnable))
    return [line.split("\t") for line in text.splitlines()]


def test_each_row_has_its_own_values_when_options_alternate() -> None:
    later = NOW + timedelta(hours=1)
    rows = [
        NewJob(jid=uuid4(), queue="a", job_type="T", args={"n": 1}, expires_in=60.0),
        NewJob(jid=uuid4(), queue="b", job_type="U", args={}, priority=5, max_retries=0),
        NewJob(jid=uuid4(), queue="a", job_type="T", args={"n": 2}, expires_in=60.0),
        NewJob(jid=uuid4(), queue="c", job_type="T", args={}, delay=1.5),
        NewJob(jid=uuid4(), queue="d", job_type="T", args={}, run_at=later, expires_at=later),
    ]
    runnable: set[str] = set()
    got = fields(rows, runnable)
    assert [line[0] for line in got] == [row.jid.hex for row in rows]
    assert [line[3] for line in got] == ['{"n":1}', "{}", '{"n":2}', "{}", "{}"]
    expires = str(NOW + timedelta(seconds=60))
    assert got[0][1:3] + got[0][4:] == ["a", "T", "enqueued", "0", str(NOW), "3", expires]
    assert got[1][1:3] + got[1][4:] == ["b", "U", "enqueued", "5", str(NOW), "0", "\\N"]
    assert got[2][1:3] + got[2][4:] == got[0][1:3] + got[0][4:]
    assert got[3][4:7] == ["scheduled", "0", str(NOW + timedelta(seconds=1.5))]
    assert got[4][4:] == ["scheduled", "0", str(later), "3", str(later)]
    assert runnable == {"a", "b"}  # c and d are due later


def test_a_long_run_of_one_class_is_written_in_chunks_of_rows_per_write() -> None:
    template = NewJob(jid=uuid4(), queue="q", job_type="T", args={})
    rows = [template.with_job(uuid4(), {"n": n}) for n in range(2 * ROWS_PER_WRITE + 7)]
    chunks = list(copy_text(rows, NOW, set()))
    assert [chunk.count("\n") for chunk in chunks] == [ROWS_PER_WRITE, ROWS_PER_WRITE, 7]
    lines = "".join(chunks).splitlines()
    assert [line.split("\t")[3] for line in lines] == [f'{{"n":{n}}}' for n in range(len(rows))]
