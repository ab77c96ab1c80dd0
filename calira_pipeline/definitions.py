"""The code location Dagster loads (`-m calira_pipeline.definitions`, `dg`, workspace.yaml).

The wiring itself lives in `calira_pipeline.wiring`, the one package that imports Dagster.
"""

from calira_pipeline.wiring.definitions import ALL_ASSETS, ALL_CHECKS, defs

__all__ = ["ALL_ASSETS", "ALL_CHECKS", "defs"]
