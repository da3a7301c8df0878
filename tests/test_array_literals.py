"""Array literals sent in place of psycopg's list dumping read back as the same values."""

from __future__ import annotations

import uuid

import psycopg

from joobq_sql.store.postgres.arrays import float_array, int_array, text_array, uuid_array

AWKWARD_TEXT = [
    "worker-1",
    "",
    "NULL",
    "null",
    "with space",
    "comma,brace{}",
    'quote"inside',
    "back\\slash",
    "trailing\\",
    "ünïcødé",
    None,
    "worker-1",
]


def test_text_arrays_keep_every_value(pg: psycopg.Connection):
    got = pg.execute("SELECT %s::text[]", (text_array(AWKWARD_TEXT),)).fetchone()
    assert got is not None and got[0] == AWKWARD_TEXT


def test_int_and_uuid_arrays_keep_every_value(pg: psycopg.Connection):
    numbers = [0, 1, -5, 2_000_000_000, None]
    jids = [uuid.uuid4() for _ in range(3)]
    got = pg.execute(
        "SELECT %s::int[], %s::uuid[]", (int_array(numbers), uuid_array(jids))
    ).fetchone()
    assert got == (numbers, jids)


def test_empty_arrays(pg: psycopg.Connection):
    got = pg.execute(
        "SELECT %s::int[], %s::uuid[], %s::text[]", (int_array([]), uuid_array([]), text_array([]))
    ).fetchone()
    assert got == ([], [], [])


def test_float_arrays_keep_every_value(pg: psycopg.Connection):
    seconds = [0.0, 0.123456, 1e-06, 259200.0, 3.0e9, 1 / 3, None]
    got = pg.execute("SELECT %s::float8[]", (float_array(seconds),)).fetchone()
    assert got is not None and got[0] == seconds


def test_a_uuid_array_takes_jids_given_as_text_too(pg: psycopg.Connection):
    jids = [uuid.uuid4(), uuid.uuid4()]
    row = pg.execute("SELECT %s::uuid[]", (uuid_array([jids[0], str(jids[1])]),)).fetchone()
    assert row == (jids,)
