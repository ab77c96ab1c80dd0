"""Utilisation and cost marts: the SQL in sql/, run by DuckDB over the published tables."""

from calira_pipeline.marts.build import (
    DuckDBLimits,
    build_all,
    build_mart,
    build_tables,
    register_parquet_views,
)
from calira_pipeline.marts.checks import CheckResult, mart_check_failures
from calira_pipeline.marts.settings import MartSettings, OperatingHours, OperatingWindow
from calira_pipeline.marts.specs import MART_SPECS, STAGING, MartSpec

__all__ = [
    "MART_SPECS",
    "STAGING",
    "CheckResult",
    "DuckDBLimits",
    "MartSettings",
    "MartSpec",
    "OperatingHours",
    "OperatingWindow",
    "build_all",
    "build_mart",
    "build_tables",
    "mart_check_failures",
    "register_parquet_views",
]
