"""The code location Dagster loads (`-m calira_pipeline.definitions`, `dg`, workspace.yaml).

The wiring itself lives in `calira_pipeline.wiring`, the one package that imports Dagster. `defs`
is built when Dagster loads it (`@dg.definitions`), not on import; `load_defs()` builds the same
definitions for a test or a script.
"""

from calira_pipeline.wiring.definitions import (
    ALL_ASSETS,
    ALL_CHECKS,
    configured_assets,
    defs,
    load_defs,
)

__all__ = ["ALL_ASSETS", "ALL_CHECKS", "configured_assets", "defs", "load_defs"]
