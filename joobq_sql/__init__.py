"""joobq-sql: a job queue for Python applications that already run on PostgreSQL."""

from .app import JoobQ, QueueDefinition
from .errors import (
    ConfigurationError,
    DuplicateJobError,
    JobDecodeError,
    JobDefinitionError,
    JoobQError,
    SchemaNotMigratedError,
    UnknownJobTypeError,
)
from .job import Job
from .status import JobStatus
from .store.base import Store
from .store.memory import MemoryStore
from .store.postgres.async_store import AsyncPostgresStore, AsyncStore, AsyncStoreAdapter
from .store.postgres.store import PostgresStore
from .store.records import Completion, Failure, JobRecord, NewJob, QueueStats

__all__ = [
    "AsyncPostgresStore",
    "AsyncStore",
    "AsyncStoreAdapter",
    "Completion",
    "ConfigurationError",
    "DuplicateJobError",
    "Failure",
    "Job",
    "JobDecodeError",
    "JobDefinitionError",
    "JobRecord",
    "JobStatus",
    "JoobQ",
    "JoobQError",
    "MemoryStore",
    "NewJob",
    "PostgresStore",
    "QueueDefinition",
    "QueueStats",
    "SchemaNotMigratedError",
    "Store",
    "UnknownJobTypeError",
]

__version__ = "0.1.0"
