"""calira_pipeline: the Calira (Clustermarket) booking API to Parquet and DuckDB, with Dagster."""

from calira_pipeline.storage import connect

__all__ = ["connect"]
