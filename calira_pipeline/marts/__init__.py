"""Utilisation and cost marts: SQL in calira_pipeline/sql run by DuckDB over the raw Parquet."""

from calira_pipeline.marts.build import build_all, build_mart, register_parquet_views
from calira_pipeline.marts.checks import CheckResult, mart_check_failures
from calira_pipeline.marts.settings import MartSettings, OperatingHours, OperatingWindow
from calira_pipeline.marts.specs import MART_SPECS, MartSpec

__all__ = [
    "MART_SPECS",
    "CheckResult",
    "MartSettings",
    "MartSpec",
    "OperatingHours",
    "OperatingWindow",
    "build_all",
    "build_mart",
    "mart_check_failures",
    "register_parquet_views",
]
