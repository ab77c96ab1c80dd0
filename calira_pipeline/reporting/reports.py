"""The facility report: one self-contained HTML page with a header (source, period,
definitions), each chart and the table of numbers it draws."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import UTC, datetime

from calira_pipeline.reporting.chart_panels import bands_in_words
from calira_pipeline.reporting.charts import SANDBOX_LABEL, Cell, Chart

DEFINITIONS = (
    ("Utilisation", "booked hours / available (calendar) hours per instrument, in each lab's "
     "own time zone; overlapping bookings count once. Overbooking (the hours counted twice) is "
     "shown beside it, never in it. Staffed-hours utilisation uses CALIRA_OPERATING_HOURS. "
     f"Bars are {bands_in_words()} (the dashed lines)."),
    ("Counted bookings", "status booked, confirmed, approved, ordered or completed, and not "
     "maintenance. Requested bookings are tentative and shown apart; cancelled and declined "
     "never count. Maintenance is downtime, never use."),
    ("Recent window", "the last complete local months as of the data's clock (the newest "
     "booking request): the current month is partial and later months are future; neither is "
     "in a total."),
    ("Cost", "exact decimal sums of counted bookings per currency, by the provider lab's local "
     "month of the start; never summed across currencies."),
    ("Hour of week", "mean occupancy of a lab's instruments in each local weekday and hour over "
     "the whole booking history, booked future slots included."),
)
_STYLE = (
    "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
    "img{max-width:100%}table{border-collapse:collapse;font-size:13px;margin:.5em 0 2em}"
    "td,th{border:1px solid #ccc;padding:3px 8px}td.n{text-align:right}"
    ".sandbox{background:#c0392b;color:#fff;padding:.4em .8em;font-weight:bold}"
    "dt{font-weight:bold}"
)


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def _cell(value: Cell) -> str:
    if value is None:
        return "<td></td>"
    numeric = isinstance(value, int | float) or value.replace(".", "", 1).isdigit()
    return f"<td{' class=n' if numeric else ''}>{html.escape(str(value))}</td>"


def html_table(rows: Sequence[dict[str, Cell]]) -> str:
    if not rows:
        return "<p><em>no rows</em></p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "\n".join("<tr>" + "".join(_cell(v) for v in row.values()) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>\n{body}</table>"


def markdown_table(rows: Sequence[dict[str, Cell]]) -> str:
    """The same table for Dagster's markdown metadata."""
    if not rows:
        return "_no rows_"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = ("" if row[c] is None else str(row[c]).replace("|", "\\|") for c in columns)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def html_report(charts: Sequence[Chart], source: str, title: str = "Calira facility report") -> str:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sandbox = any(chart.is_sandbox for chart in charts)
    banner = (
        f"<p class=sandbox>{SANDBOX_LABEL}: synthetic bookings from the built-in sandbox, "
        "not a real facility.</p>\n" if sandbox else ""
    )
    periods = "".join(
        f"<li>{html.escape(c.title)}: {html.escape(c.window)}</li>" for c in charts
    )
    definitions = "".join(
        f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>" for term, text in DEFINITIONS
    )
    sections = []
    for chart in charts:
        tables = "".join(
            f"<h3>{html.escape(name.replace('_', ' '))}</h3>\n{html_table(rows)}"
            for name, rows in chart.tables.items()
        )
        sections.append(
            f"<h2>{html.escape(chart.title)}</h2>\n<p>Period: {html.escape(chart.window)}</p>\n"
            f'<img alt="{html.escape(chart.title)}" '
            f'src="data:image/png;base64,{base64.b64encode(chart.png).decode()}">\n{tables}'
        )
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>\n{banner}<h1>{html.escape(title)}</h1>\n"
        f"<p>Source: <b>{html.escape(source)}</b>. Generated {generated}.</p>\n"
        f"<h2>Periods</h2><ul>{periods}</ul>\n<h2>Definitions</h2><dl>{definitions}</dl>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
