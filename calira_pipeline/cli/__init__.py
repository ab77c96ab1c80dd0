"""`calira-pipeline`: demo, sandbox, auth login, doctor."""

from calira_pipeline.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
