"""Your own definitions: every asset, check, job or component here joins the code location.

`dg scaffold defs dagster.asset my_report.py` creates one here. Read the warehouse through the
read-only `duckdb` resource and write your results to your own file, never into `calira.duckdb`
(each publish replaces that file). See "Extending the project" in the README.
"""
