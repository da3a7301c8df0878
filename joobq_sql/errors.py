"""Every error joobq-sql raises on purpose. Each message names the bad value and what is valid."""

from __future__ import annotations


class JoobQError(Exception):
    """Base class of the errors joobq-sql raises on purpose."""


class ConfigurationError(JoobQError, ValueError):
    """A setting is invalid; the message names the setting and the accepted values."""


class JobDefinitionError(JoobQError, TypeError):
    """A Job subclass is declared wrongly (a reserved field name, an unsupported field type)."""


class UnknownJobTypeError(JoobQError, LookupError):
    """A stored job names a job_type that no imported Job subclass registers."""


class JobDecodeError(JoobQError, ValueError):
    """A stored job's args do not fit its Job class; the message names the field."""


class SchemaNotMigratedError(JoobQError, RuntimeError):
    """The database has no joobq tables yet; run the migrations first."""


class DuplicateJobError(JoobQError, ValueError):
    """A job with the same jid is already stored; nothing of the batch was written."""


class NothingSentError(Exception):
    """Mixed into a store error raised before any statement reached the database (no connection
    could be had), so the call had no effect: a claim that fails so has claimed nothing.

    Not a JoobQError: the error it is mixed into (SQLAlchemy's OperationalError, wrapping
    psycopg's) keeps its own type and message for whoever classifies or reports it."""
