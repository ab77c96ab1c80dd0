"""Materialisation metadata shared by raw and mart assets: schema, row count, preview."""

from __future__ import annotations

import re
from typing import Any

import dagster as dg
import pyarrow as pa

PREVIEW_ROWS = 5
_PREVIEW_SKIP = {"raw_json"}


def duckdb_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_decimal(arrow_type):
        return f"DECIMAL({arrow_type.precision},{arrow_type.scale})"
    simple = {
        pa.int64(): "BIGINT",
        pa.int32(): "INTEGER",
        pa.string(): "VARCHAR",
        pa.large_string(): "VARCHAR",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
        pa.date32(): "DATE",
    }
    return simple.get(arrow_type, str(arrow_type).upper())


def column_schema(
    table: pa.Table | pa.Schema, descriptions: dict[str, str] | None = None
) -> dg.TableSchema:
    descriptions = descriptions or {}
    schema = table if isinstance(table, pa.Schema) else table.schema
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=field.name,
                type=duckdb_type(field.type),
                description=descriptions.get(field.name),
            )
            for field in schema
        ]
    )


def markdown_preview(table: pa.Table, rows: int = PREVIEW_ROWS) -> str:
    columns = [c for c in table.column_names if c not in _PREVIEW_SKIP][:12]
    if not columns:
        return "_no columns_"
    head = table.select(columns).slice(0, rows).to_pylist()
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in head:
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    if not head:
        lines.append("| " + " | ".join("" for _ in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = " ".join(("" if value is None else str(value)).split())
    return markdown_text(text if len(text) <= 40 else text[:37] + "...")


# Every ASCII punctuation character may be backslash-escaped in CommonMark, and an escaped one
# is always literal text: no image, link, HTML tag, entity, emphasis or table cell boundary.
_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")
# GFM turns bare URLs and e-mail addresses into links even when escaped (the autolink pass runs
# on the unescaped text), so a zero-width space splits the patterns it looks for.
_AUTOLINK_TRIGGERS = re.compile(r"(?i)(?<=:)(?=//)|(?<=www)(?=\.)|(?<=@)")


def markdown_text(text: str) -> str:
    """``text`` (from the API) as Markdown that renders as that text and nothing else (with a
    zero-width space inside anything GFM would turn into a link)."""
    text = _AUTOLINK_TRIGGERS.sub("\u200b", text)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def table_metadata(
    name: str, table: pa.Table, descriptions: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "dagster/row_count": table.num_rows,
        "dagster/column_schema": column_schema(table, descriptions),
        "dagster/table_name": f"calira.main.{name}",
        "preview": dg.MetadataValue.md(markdown_preview(table)),
    }
