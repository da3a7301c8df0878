"""The Job base class: typed fields, the JSON round trip, the registry, and refusals."""

from __future__ import annotations

import dataclasses
import enum
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID, uuid4

import pytest

from joobq_sql import Job, JobDecodeError, JobDefinitionError, UnknownJobTypeError
from joobq_sql.job import job_class, register


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Address:
    street: str
    moved_in: date | None = None


@dataclasses.dataclass
class Customer:
    name: str
    addresses: list[Address]
    balance: Decimal


class ModelEverything(Job):
    when: datetime
    day: date
    wait: timedelta
    ident: UUID
    amount: Decimal
    colour: Colour
    customer: Customer
    tags: list[str]
    pair: tuple[int, str]
    scores: dict[str, float]
    maybe: int | None = None
    mode: Literal["fast", "slow"] = "fast"
    anything: Any = None


def everything() -> ModelEverything:
    return ModelEverything(
        when=datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2))),
        day=date(2026, 1, 31),
        wait=timedelta(minutes=90),
        ident=uuid4(),
        amount=Decimal("12345678901234567890.000000001"),
        colour=Colour.BLUE,
        customer=Customer(
            name="Ada", addresses=[Address("1 Main St", date(2020, 5, 1))], balance=Decimal("-1.5")
        ),
        tags=["a", "b"],
        pair=(1, "x"),
        scores={"x": 1.5},
        anything={"nested": [1, 2, {"deep": None}]},
    )


def test_every_supported_type_round_trips_through_json() -> None:
    job = everything()
    stored = json.loads(json.dumps(job.to_args()))  # exactly what the jsonb column keeps
    back = ModelEverything.from_args(stored, jid=job.jid, attempt=2)
    assert back == job
    assert (back.jid, back.attempt) == (job.jid, 2)
    assert back.when.utcoffset() == timedelta(hours=2)
    assert back.amount == Decimal("12345678901234567890.000000001")  # no float rounding


def test_to_json_is_the_seed_job_document() -> None:
    class ModelDocument(Job):
        queue = "reports"
        retries = 5
        n: int

    job = ModelDocument(n=3)
    document = json.loads(job.to_json())
    assert document == {
        "jid": str(job.jid),
        "job_type": "ModelDocument",
        "queue": "reports",
        "args": {"n": 3},
        "priority": 0,
        "max_retries": 5,
        "attempt": 0,
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("when", datetime(2026, 1, 1), "naive datetime"),
        ("amount", Decimal("NaN"), "finite Decimal"),
        ("scores", {"x": float("inf")}, "finite number"),
        ("tags", {"a", "b"}, "a list"),
        ("anything", {1, 2}, "JSON value"),
        ("anything", {"k": float("nan")}, "finite number"),
        ("colour", "red", "Colour"),
        ("ident", "not-a-uuid", "UUID"),
    ],
)
def test_a_value_that_cannot_be_stored_is_refused_with_the_field_named(
    field: str, value: Any, message: str
) -> None:
    job = dataclasses.replace(everything(), **{field: value})
    with pytest.raises(TypeError, match=rf"ModelEverything\.{field}.*{message}"):
        job.to_args()


def test_an_unsupported_annotation_is_refused_when_the_class_is_declared() -> None:
    with pytest.raises(JobDefinitionError, match=r"ModelBadType\.handle"):

        class ModelBadType(Job):
            handle: set[int]


@pytest.mark.parametrize("name", ["jid", "queue", "priority", "attempt", "connection"])
def test_a_field_named_like_a_job_option_is_refused(name: str) -> None:
    with pytest.raises(JobDefinitionError, match="reserved"):
        type(f"ModelReserved_{name}", (Job,), {"__annotations__": {name: int}})


@pytest.mark.parametrize(
    ("option", "value"),
    [("queue", ""), ("retries", -1), ("priority", 40000), ("expires", timedelta(0))],
)
def test_bad_class_options_are_refused_naming_them(option: str, value: Any) -> None:
    with pytest.raises(JobDefinitionError, match=option):
        type(f"ModelBadOption_{option}", (Job,), {option: value})


def test_a_second_class_with_the_same_job_type_is_refused() -> None:
    class ModelTaken(Job):
        pass

    impostor = type("ModelTaken", (Job,), {"__module__": "somewhere.else", "job_type": "Other1"})
    impostor.job_type = "ModelTaken"
    with pytest.raises(JobDefinitionError, match="taken by"):
        register(impostor)
    assert job_class("ModelTaken") is ModelTaken


def test_an_unknown_job_type_names_itself() -> None:
    with pytest.raises(UnknownJobTypeError, match="NoSuchModelJob"):
        job_class("NoSuchModelJob")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"tags": []}, "lack the field 'when'"),
        ({**everything().to_args(), "extra": 1}, "unknown fields \\['extra'\\]"),
        ({**everything().to_args(), "when": "yesterday"}, "when: expected an ISO datetime"),
        ({**everything().to_args(), "pair": [1]}, "pair: expected 2 items"),
        ({**everything().to_args(), "amount": 1.5}, "amount: expected a decimal string"),
    ],
)
def test_malformed_stored_args_are_refused_naming_the_field(args: Any, message: str) -> None:
    with pytest.raises(JobDecodeError, match=message):
        ModelEverything.from_args(args)


def test_fields_keep_dataclass_defaults_and_keyword_construction() -> None:
    class ModelDefaults(Job):
        to: str
        subject: str = "hello"
        cc: list[str] = dataclasses.field(default_factory=list)

    job = ModelDefaults(to="a@example.com")
    assert (job.subject, job.cc, job.attempt) == ("hello", [], 0)
    assert isinstance(job.jid, UUID) and job.jid.version == 7
    with pytest.raises(TypeError):
        ModelDefaults("positional")  # type: ignore[misc]


def test_jids_are_time_ordered() -> None:
    class ModelOrdered(Job):
        pass

    jids = [ModelOrdered().jid for _ in range(50)]
    assert [j.int >> 80 for j in jids] == sorted(j.int >> 80 for j in jids)


def test_perform_now_runs_sync_and_async_perform_inline() -> None:
    class ModelInline(Job):
        x: int

        def perform(self) -> int:
            return self.x * 2

    class ModelInlineAsync(Job):
        x: int

        async def perform(self) -> int:
            return self.x * 3

    assert ModelInline.perform_now(x=2) == 4
    assert ModelInlineAsync.perform_now(x=2) == 6


def test_perform_now_checks_the_fields_like_an_enqueue() -> None:
    class ModelInlineChecked(Job):
        when: datetime

        def perform(self) -> None:
            raise AssertionError("must not run")

    with pytest.raises(TypeError, match="naive"):
        ModelInlineChecked.perform_now(when=datetime(2026, 1, 1))
    with pytest.raises(AssertionError, match="must not run"):
        ModelInlineChecked.perform_now(when=datetime.now(UTC))
