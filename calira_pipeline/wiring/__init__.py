"""Dagster wiring: assets, checks, resources, jobs, schedules and the code location's content.

The only package that imports Dagster; everything it calls is plain Python in the packages below.
"""
