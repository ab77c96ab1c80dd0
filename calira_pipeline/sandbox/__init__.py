"""A faithful, controllable, deterministic stand-in for the Calira REST API (ASGI)."""

from calira_pipeline.sandbox.config import (
    ALL_SCOPES,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SCALES,
    ClientApp,
    FaultConfig,
    SandboxConfig,
    Scale,
)
from calira_pipeline.sandbox.core import Sandbox
from calira_pipeline.sandbox.data import Dataset
from calira_pipeline.sandbox.stats import RequestStats

__all__ = [
    "ALL_SCOPES",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SCALES",
    "ClientApp",
    "Dataset",
    "FaultConfig",
    "RequestStats",
    "Sandbox",
    "SandboxConfig",
    "Scale",
]
