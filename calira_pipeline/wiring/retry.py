"""Step retries for ingestion: outages outlast the client's own retries; bad settings do not."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import dagster as dg

from calira_pipeline.api.errors import (
    ApiError,
    AuthError,
    ConfigError,
    RecordError,
    RuntimeExceededError,
)
from calira_pipeline.config import ingest_retries


def ingest_retry_policy(environ: Mapping[str, str] | None = None) -> dg.RetryPolicy:
    """The raw step's retries, with CALIRA_INGEST_RETRIES read now (as the definitions are built).

    Exponential backoff with jitter: 30 s, then about 60 s, so a short API outage or a burst of
    5xx is ridden out without a person re-launching the run.
    """
    return dg.RetryPolicy(
        max_retries=ingest_retries(environ),
        delay=30,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


def is_permanent(error: BaseException) -> bool:
    """True when retrying the step cannot help: settings, credentials, scopes, bad records, 4xx."""
    if isinstance(error, (ConfigError, AuthError, RecordError, RuntimeExceededError)):
        return True
    status = error.status if isinstance(error, ApiError) else None
    # 3xx: redirects are never followed, so the next attempt is redirected too.
    return status is not None and 300 <= status < 500 and status not in (408, 429)


@contextmanager
def permanent_errors_fail_without_retry(collection: str) -> Iterator[None]:
    """Turn a permanent client error into a `dg.Failure` that the retry policy will not repeat."""
    try:
        yield
    except Exception as error:
        if not is_permanent(error):
            raise
        raise dg.Failure(
            description=f"{collection}: {error} (not retried: re-running cannot fix this)",
            allow_retries=False,
        ) from error
