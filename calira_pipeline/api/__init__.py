"""Calira API client: plain Python (no Dagster), async httpx inside, a sync ``fetch`` outside.

>>> client = CaliraClient(ClientSettings.from_env())
>>> result = client.fetch("bookings")
>>> result.rows["bookings"][0]["cost"]
"""

from .client import CaliraClient
from .errors import (
    ApiError,
    AuthError,
    CaliraError,
    ConfigError,
    MissingScopeError,
    PaginationError,
    RecordError,
)
from .login import authorization_code_login
from .results import CollectionResult, FetchStats
from .settings import ClientSettings, Secret

__all__ = [
    "ApiError",
    "AuthError",
    "CaliraClient",
    "CaliraError",
    "ClientSettings",
    "CollectionResult",
    "ConfigError",
    "FetchStats",
    "MissingScopeError",
    "PaginationError",
    "RecordError",
    "Secret",
    "authorization_code_login",
]
