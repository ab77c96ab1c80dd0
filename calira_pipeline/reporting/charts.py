"""The charts a facility manager looks at, rendered headless to PNG, each with the figures it
shows as data (every number comes from calira_pipeline.reporting.figures, the one definition)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import duckdb

from calira_pipeline.reporting import figures
from calira_pipeline.reporting.chart_layout import (
    LABEL_PAD,
    PAD,
    TICK,
    TITLE_PAD,
    Layout,
    drawn_in_style,
)
from calira_pipeline.reporting.chart_layout import (
    pyplot as _pyplot,
)
from calira_pipeline.reporting.chart_panels import (
    HEADROOM,
    cost_panel,
    cost_stacks,
    cost_title,
    rank_labs,
    ranking_panel,
    stack_range,
)
from calira_pipeline.reporting.chart_text import label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SANDBOX_SOURCE = "sandbox"
SANDBOX_LABEL = "SANDBOX DATA"
HEATMAP_LABS = 6
COST_LABS = 8
DPI = 100  # pixels per inch of every PNG
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
Cell = str | int | float | None


@dataclass
class Chart:
    """A rendered chart plus the numbers it draws: `tables` (name -> rows) and `facts`."""

    title: str
    png: bytes
    window: str
    source: str
    tables: dict[str, list[dict[str, Cell]]] = field(default_factory=dict)
    facts: dict[str, Cell] = field(default_factory=dict)

    @property
    def is_sandbox(self) -> bool:
        return self.source == SANDBOX_SOURCE


def charts_to_json(charts: Mapping[str, Chart]) -> bytes:
    """Rendered charts by name as JSON (the PNG base64-encoded), to be drawn once per run."""
    return json.dumps({
        name: {"title": c.title, "png": base64.b64encode(c.png).decode(), "window": c.window,
               "source": c.source, "tables": c.tables, "facts": c.facts}
        for name, c in charts.items()
    }).encode()


def charts_from_json(content: bytes) -> dict[str, Chart]:
    """The charts charts_to_json wrote, equal to the ones it was given."""
    return {
        name: Chart(c["title"], base64.b64decode(c["png"]), c["window"], c["source"],
                    c["tables"], c["facts"])
        for name, c in json.loads(content).items()
    }


def _title(text: str, source: str, *more: str) -> list[str]:
    """A figure title's parts (the sandbox label first where it applies): one line if it fits."""
    return [f"{SANDBOX_LABEL} · {text}" if source == SANDBOX_SOURCE else text, *more]


def _png(fig: Figure, source: str) -> bytes:
    from PIL import Image

    if source == SANDBOX_SOURCE:  # a watermark no crop or screenshot can lose
        fig.text(0.5, 0.5, SANDBOX_LABEL, ha="center", va="center", rotation=25, fontsize=60,
                 color="#c0392b", alpha=0.12, fontweight="bold", zorder=0)
    fig.canvas.draw()  # once: the layout was fixed before
    # The figures are opaque: RGB encodes faster and ~8 % smaller than savefig's RGBA.
    rgba = fig.canvas.buffer_rgba()  # type: ignore[attr-defined]
    image = Image.frombuffer("RGBA", (rgba.shape[1], rgba.shape[0]), rgba, "raw", "RGBA", 0, 1)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="png")
    _pyplot().close(fig)
    return buffer.getvalue()


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


@drawn_in_style
def utilisation_ranking(con: duckdb.DuckDBPyConnection, source: str) -> Chart:
    """Instruments ranked by utilisation over the last complete months."""
    window = figures.recent_window(con)
    every = figures.instrument_utilisation(con, window)
    rows = every[: figures.TOP_INSTRUMENTS]
    staffed = any(r.staffed_utilisation is not None for r in rows)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2 if staffed else 1, sharey=True, squeeze=False,
                             figsize=(10.5 if staffed else 9, max(3.0, 0.3 * len(rows) + 1.8)),
                             width_ratios=[3, 2] if staffed else [1], dpi=DPI)
    shown = rows[::-1]  # barh draws the first bar at the bottom: the top instrument last
    names = [label(f"{r.instrument} ({r.lab})", 48) for r in shown]
    layout = Layout(fig)
    top = layout.suptitle(_title(f"Top {len(rows)} instruments by utilisation", source,
                                 window.label()), fontsize=10) + PAD
    left = PAD + layout.line(10) + LABEL_PAD + layout.widest(names, 10) + TICK
    bottom = PAD + layout.line(9) + LABEL_PAD + layout.line(10) + TICK
    layout.place(left, 0.3, top, bottom, wspace=0.3)
    ranking_panel(layout, axes[0, 0], names, [r.utilisation for r in shown],
                  [r.overbooked_hours for r in shown],
                  "Calendar: booked hours (overlaps once) / all hours, %")
    axes[0, 0].set_ylabel("Instrument (lab)")
    if not rows:  # an empty window: no instrument to name, nor numbers for the margin to fit
        axes[0, 0].set_yticks([])
    if staffed:
        ranking_panel(layout, axes[0, 1], names,
                      [r.staffed_utilisation or 0.0 for r in shown], None,
                      "Staffed: booked / staffed hours, %")
    booked = sum(r.booked_hours for r in every)
    available = sum(r.available_hours for r in every)
    return Chart(
        "Instruments ranked by utilisation",
        _png(fig, source),
        window.label(),
        source,
        tables={"top_instruments": [_instrument_row(rank, r) for rank, r in enumerate(rows, 1)]},
        facts={
            "window_first_month": window.first_month.isoformat(),
            "window_last_month": window.last_month.isoformat(),
            "instruments": len(every),
            "facility_utilisation_pct": _pct(booked / available if available else 0.0),
            "overbooked_hours": round(sum(r.overbooked_hours for r in every), 2),
        },
    )


def _instrument_row(rank: int, row: figures.InstrumentUse) -> dict[str, Cell]:
    return {
        "rank": rank,
        "instrument": row.instrument,
        "lab": row.lab,
        "utilisation_pct": _pct(row.utilisation),
        "booked_hours": round(row.booked_hours, 1),
        "available_hours": round(row.available_hours, 1),
        "overbooked_hours": round(row.overbooked_hours, 1),
        "maintenance_hours": round(row.maintenance_hours, 1),
        "staffed_utilisation_pct": _pct(row.staffed_utilisation),
    }


@drawn_in_style
def hour_of_week_heatmaps(con: duckdb.DuckDBPyConnection, source: str) -> Chart:
    """Mean instrument occupancy by local weekday and hour, one panel per busiest lab."""
    labs = figures.hour_of_week_by_lab(con, HEATMAP_LABS)
    window = figures.all_bookings_label(con)
    peak = max([lab.peak[2] for lab in labs] + [0.01]) * 100
    step = 1.0 if peak < 10 else 5.0
    scale = min(100.0, max(1.0, -(-peak // step) * step))  # fitted to the data, all panels
    plt = _pyplot()
    panels = max(1, len(labs))
    fig, axes = plt.subplots(panels, 1, figsize=(9, 1.7 * panels + 1.0), squeeze=False, dpi=DPI)
    layout = Layout(fig)
    top = layout.suptitle(_title("Mean instrument occupancy by hour of week", source, window),
                          fontsize=10) + PAD
    heading = layout.line(9) + TITLE_PAD  # each panel's lab name above it
    left = PAD + layout.line(9) + PAD + layout.widest(WEEKDAYS, 7) + TICK
    bar, gap = 0.2, 0.25  # the colour bar's width, and its gap from the panels
    right = PAD + layout.line(10) + LABEL_PAD + layout.widest(["100.0"], 10) + TICK + bar + gap
    bottom = PAD + layout.line(10) + LABEL_PAD + layout.line(10) + TICK
    layout.place(left, right, top + heading, bottom, hspace=heading + 0.1)
    image = None
    for ax, lab in zip(axes[:, 0], labs, strict=False):
        grid = [[v * 100 for v in row] for row in lab.occupancy]
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=scale,
                          interpolation="nearest")
        ax.set_yticks(range(7), WEEKDAYS, fontsize=7)
        ax.set_xticks([])  # the hours are marked under the bottom panel only
        # y given: placed, not searched for (that measured every axis of the figure again).
        ax.set_title(label(lab.lab, 60), fontsize=9, loc="left", y=1.0)
    axes[-1, 0].set_xticks(range(0, 24, 2))
    axes[-1, 0].set_xlabel("Local hour of day (lab's own time zone)")
    fig.supylabel("Weekday", fontsize=9, x=PAD / layout.width, ha="left")
    if image is not None:
        height = layout.height - top - heading - bottom
        colour_bar = fig.add_axes(layout.box(layout.width - right + gap, bottom + 0.1 * height,
                                             bar, 0.8 * height))
        fig.colorbar(image, cax=colour_bar, label="Mean instrument occupancy (%)")
    table: list[dict[str, Cell]] = []
    for lab in labs:
        weekday, hour, value = lab.peak
        cells = [v for row in lab.occupancy for v in row]
        table.append({
            "lab": lab.lab,
            "peak_weekday": WEEKDAYS[weekday],
            "peak_hour": hour,
            "peak_occupancy_pct": _pct(value),
            "mean_occupancy_pct": _pct(sum(cells) / len(cells)),
        })
    return Chart("Hour-of-week occupancy by lab", _png(fig, source), window, source,
                 tables={"labs": table}, facts={"colour_scale_max_pct": scale})


@drawn_in_style
def cost_by_requester(con: duckdb.DuckDBPyConnection, source: str) -> Chart:
    """Monthly counted cost by requester lab, one panel per currency (never summed across)."""
    window = figures.recent_window(con, figures.COST_MONTHS)
    costs = figures.monthly_cost_by_requester(con, window.first_month)
    totals = figures.currency_totals(con, window)
    currencies = [t.currency for t in totals]
    counted: dict[tuple[str, str], Decimal] = {}  # (currency, lab): complete months' cost
    for m in costs:
        if window.state(m.month) == "complete":
            key = (m.currency, m.requester_lab)
            counted[key] = counted.get(key, Decimal(0)) + m.counted_cost
    ranked = rank_labs(counted, COST_LABS)
    plt = _pyplot()
    colours = {lab: plt.get_cmap("tab10")(i) for i, lab in enumerate(ranked)}  # fixed per lab
    if any(c.requester_lab not in colours for c in costs):
        colours["other labs"] = (0.7, 0.7, 0.7, 1.0)
    months = sorted({c.month for c in costs})
    panels = max(1, len(currencies))
    fig, axes = plt.subplots(panels, 1, squeeze=False, figsize=(10, 2.8 * panels + 0.8),
                             dpi=DPI)
    layout = Layout(fig)
    top = layout.suptitle(_title("Counted cost by requester lab per month (hatched: partial or "
                                 "future, not in totals)", source), fontsize=10) + PAD
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[lab]) for lab in colours]
    legend = fig.legend(handles, [label(lab, 28) for lab in colours], loc="lower center",
                        bbox_to_anchor=(0.5, PAD / layout.height), ncols=4, fontsize=8,
                        title="Requester lab (same colour in every panel)", title_fontsize=8)
    heights = [cost_stacks(total, costs, months, colours) for total in totals]
    ends = [end * HEADROOM for h in heights for end in stack_range(h)]
    left = PAD + layout.line(10) + LABEL_PAD + TICK + layout.widest(
        [f"{end:,.0f}" for end in ends], 10)
    right = PAD + 0.1
    titles = [layout.wrap(cost_title(total, window), 9, layout.width - left - right)
              for total in totals]
    heading = layout.line(9, max((t.count("\n") + 1 for t in titles), default=1)) + TITLE_PAD
    bottom = (2 * PAD + legend.get_window_extent(layout.renderer).height / fig.dpi
              + layout.line(7, 2) + TICK)
    layout.place(left, right, top + heading, bottom, hspace=heading + 0.1)
    for ax, total, stacks, title in zip(axes[:, 0], totals, heights, titles, strict=False):
        cost_panel(ax, stacks, months, colours, window)
        ax.set_ylabel(f"Counted cost ({label(total.currency, 12)})")
        ax.set_title(title, fontsize=9, loc="left", y=1.0)  # placed: see the heatmaps
        ax.set_xticks([])  # the months are named under the bottom panel only
    if not totals:
        axes[0, 0].set_yticks([])
    axes[-1, 0].set_xticks(range(len(months)), [m.strftime("%b\n%Y") for m in months],
                           fontsize=7)
    top_labs: list[dict[str, Cell]] = [
        {"currency": c, "requester_lab": lab,
         "counted_cost": str(counted.get((c, lab), Decimal(0)))}
        for c in currencies for lab in ranked
    ]
    return Chart(
        "Monthly cost by requester lab",
        _png(fig, source),
        window.label(),
        source,
        tables={
            "totals_by_currency": [_total_row(t) for t in totals],
            "requester_labs": [r for r in top_labs if r["counted_cost"] not in ("0", "0.00")],
        },
        facts={"window_first_month": window.first_month.isoformat(),
               "window_last_month": window.last_month.isoformat()},
    )


def _total_row(total: figures.CurrencyTotal) -> dict[str, Cell]:
    return {
        "currency": total.currency,
        "counted_cost": str(total.counted_cost),
        "counted_bookings": total.counted_bookings,
        "requested_cost": str(total.requested_cost),
        "cancelled_or_declined_cost": str(total.excluded_cost),
    }
