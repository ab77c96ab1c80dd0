"""Raw ingestion without Dagster: personal-data masking, staged Parquet writers, the incremental
merge, the ingestion lock and progress events."""
