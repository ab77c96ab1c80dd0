"""Charts a facility manager would rather look at than read, rendered headless to PNG."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING

import duckdb

from calira_pipeline.chart_text import plain_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Colour bands managers use for utilisation: <=60 %, 60-80 %, 80-100 %, >100 % (overbooked).
BANDS = ((0.6, "#4c9f70"), (0.8, "#e0b43c"), (1.0, "#e07b39"), (float("inf"), "#c0392b"))
RANKED_INSTRUMENTS = 25
RECENT_MONTHS = 3
HEATMAP_LABS = 6
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def band_colour(utilisation: float) -> str:
    return next(colour for upper, colour in BANDS if utilisation <= upper)


def _pyplot() -> ModuleType:
    """matplotlib, imported on first use: it costs ~0.4 s on every load of the code location."""
    import matplotlib

    matplotlib.use("Agg")  # headless: runs in Dagster step processes and CI without a display
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def utilisation_ranking(con: duckdb.DuckDBPyConnection) -> bytes:
    """Instruments ranked by booked-time utilisation over the last months of data."""
    rows = con.execute(
        """
        with recent as (
            select * from equipment_utilisation_monthly
            where month > (select max(month) from equipment_utilisation_monthly)
                          - to_months(?)
        )
        select coalesce(e.name, r.equipment_id::varchar) as name,
               sum(r.booked_hours_sum) / nullif(sum(r.available_hours), 0) as booked,
               sum(r.booked_hours) / nullif(sum(r.available_hours), 0) as occupied
        from recent r left join equipment e on e.id = r.equipment_id
        group by all order by booked desc nulls last limit ?
        """,
        [RECENT_MONTHS, RANKED_INSTRUMENTS],
    ).fetchall()
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.28 * len(rows) + 1)))
    names = [plain_text(r[0], 40) for r in reversed(rows)]
    values = [float(r[1] or 0) for r in reversed(rows)]
    ax.barh(names, [v * 100 for v in values], color=[band_colour(v) for v in values])
    for threshold in (60, 80, 100):
        ax.axvline(threshold, color="#888", linewidth=0.6, linestyle="--")
    ax.set_xlabel(f"booked hours / calendar hours, last {RECENT_MONTHS} months (%)")
    ax.set_title("Instruments ranked by utilisation (bands: ≤60, 60–80, 80–100, >100 %)")
    return _png(fig)


def hour_of_week_heatmaps(con: duckdb.DuckDBPyConnection) -> bytes:
    """Occupancy by local weekday and hour, one panel per lab (the busiest labs)."""
    labs = con.execute(
        """
        select h.lab_id, coalesce(a.name, h.lab_id::varchar) as lab_name
        from equipment_hour_of_week h left join accounts a on a.id = h.lab_id
        group by all order by sum(h.booked_hours) desc limit ?
        """,
        [HEATMAP_LABS],
    ).fetchall()
    plt = _pyplot()
    fig, axes = plt.subplots(len(labs) or 1, 1, figsize=(9, 1.9 * max(1, len(labs))), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, (lab_id, lab_name) in zip(axes[:, 0], labs, strict=False):
        grid = [[0.0] * 24 for _ in WEEKDAYS]
        for weekday, hour, occupancy in con.execute(
            "select weekday, hour, avg(occupancy) from equipment_hour_of_week "
            "where lab_id = ? group by all",
            [lab_id],
        ).fetchall():
            grid[int(weekday) - 1][int(hour)] = float(occupancy or 0)
        image = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=0, vmax=1)
        ax.set_yticks(range(7), WEEKDAYS)
        ax.set_xticks(range(0, 24, 3))
        title = f"{plain_text(lab_name)} — mean instrument occupancy by local hour"
        ax.set_title(title, fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.02)
    return _png(fig)


def cost_by_requester(con: duckdb.DuckDBPyConnection) -> bytes:
    """Monthly cost by requester lab, one panel per currency (never summed across them)."""
    currencies = [
        r[0]
        for r in con.execute(
            "select distinct currency from booking_cost_monthly where currency is not null "
            "order by 1"
        ).fetchall()
    ]
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(currencies) or 1, 1, figsize=(9, 3 * max(1, len(currencies))), squeeze=False
    )
    for ax, currency in zip(axes[:, 0], currencies, strict=False):
        rows = con.execute(
            """
            select c.month, coalesce(a.name, c.requester_lab_id::varchar, 'unknown') as lab,
                   sum(c.total_cost)::double
            from booking_cost_monthly c left join accounts a on a.id = c.requester_lab_id
            where c.currency = ? group by all order by 1
            """,
            [currency],
        ).fetchall()
        months = sorted({r[0] for r in rows})
        totals: dict[str, float] = {}
        for _, lab, cost in rows:
            totals[lab] = totals.get(lab, 0.0) + cost
        top = sorted(totals, key=lambda lab: -totals[lab])[:8]
        bottom = [0.0] * len(months)
        for lab in top:
            values = [sum(c for m, lb, c in rows if m == month and lb == lab) for month in months]
            ax.bar(months, values, bottom=bottom, width=20, label=plain_text(lab, 30))
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_title(f"Monthly cost by requester lab ({plain_text(currency)})", fontsize=9)
        ax.legend(fontsize=6, loc="upper left")
    return _png(fig)


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def html_report(charts: Mapping[str, bytes], title: str = "Calira facility report") -> str:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = "\n".join(
        f'<h2>{html.escape(name)}</h2>\n<img alt="{html.escape(name)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        for name, png in charts.items()
    )
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto}img{max-width:100%}"
        f"</style></head><body>\n<h1>{html.escape(title)}</h1>\n<p>Generated {generated}.</p>\n"
        f"{sections}\n</body></html>\n"
    )
