"""The panels the charts draw: an instrument ranking, and one currency's stacked monthly cost."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal
from typing import Any

from calira_pipeline.reporting import figures
from calira_pipeline.reporting.chart_layout import Layout
from calira_pipeline.reporting.chart_text import label

# Colour bands managers use for utilisation: <=60 %, 60-80 %, 80-100 %.
BANDS = ((0.6, "#4c9f70"), (0.8, "#e0b43c"), (float("inf"), "#e07b39"))


BAND_NAMES = ("green", "amber", "orange")
# Dashed lines at each band's upper bound, and at 100 %.
BAND_LINES = (*(upper * 100 for upper, _ in BANDS[:-1]), 100.0)


def band_colour(utilisation: float) -> str:
    return next(colour for upper, colour in BANDS if utilisation <= upper)


def bands_in_words() -> str:
    """The bands as the report defines them ("green up to 60 %, amber from 60 to 80 % and ...")."""
    bounds = [f"{upper * 100:.0f}" for upper, _ in BANDS[:-1]]
    parts = [f"{BAND_NAMES[0]} up to {bounds[0]} %"]
    middle = zip(BAND_NAMES[1:-1], itertools.pairwise(bounds), strict=True)
    parts += [f"{name} from {low} to {high} %" for name, (low, high) in middle]
    return ", ".join(parts) + f" and {BAND_NAMES[-1]} above {bounds[-1]} %"


def ranking_panel(layout: Layout, ax: Any, names: list[str], values: list[float],
                  overbooked: list[float] | None, xlabel: str) -> None:
    percent = [v * 100 for v in values]
    notes = [f"{value:.1f} %" for value in percent]
    if overbooked is not None:
        notes = [note + (f" (+{hours:.1f} h overbooked)" if hours > 0.05 else "")
                 for note, hours in zip(notes, overbooked, strict=True)]
    ax.barh(names, percent, color=[band_colour(v) for v in values])
    # Every note ends inside the panel: it starts at value + 0.5 and is at most `share` of it.
    share = layout.widest(notes, 7) / (ax.get_position().width * layout.width)
    right = max([min(110.0, max([*percent, 1.0]) * 1.3 + 2),
                 *((v + 1.0) / (1 - share) for v in percent if share < 0.9)])
    ax.set_xlim(0, right)
    for threshold in BAND_LINES:  # the managers' bands, where the scale reaches them
        if threshold < right:
            ax.axvline(threshold, color="#888", linewidth=0.6, linestyle="--")
    for y, (value, note) in enumerate(zip(percent, notes, strict=True)):
        ax.text(value + 0.5, y, note, va="center", fontsize=7)
    ax.set_xlabel(xlabel, fontsize=9)


def rank_labs(counted: dict[tuple[str, str], Decimal], limit: int) -> list[str]:
    """The `limit` labs with the largest share of their currencies' counted cost (a lab's
    shares summed over currencies; ties by name). Money in two currencies is never added: a
    yen total would outrank every euro one."""
    totals: dict[str, Decimal] = {}
    for (currency, _), cost in counted.items():
        totals[currency] = totals.get(currency, Decimal(0)) + cost
    shares: dict[str, Decimal] = {}
    for (currency, lab), cost in counted.items():
        share = cost / abs(totals[currency]) if totals[currency] else Decimal(0)
        shares[lab] = shares.get(lab, Decimal(0)) + share
    return sorted(shares, key=lambda lab: (-shares[lab], lab))[:limit]


def cost_title(total: figures.CurrencyTotal, window: figures.Window) -> str:
    return (f"{label(total.currency, 12)} {total.counted_cost:,} counted over "
            f"{window.first_month:%b %Y} – {window.last_month:%b %Y} "
            f"({total.counted_bookings:,} bookings); requested {total.requested_cost:,} "
            "not plotted")


def cost_stacks(total: figures.CurrencyTotal, costs: list[figures.MonthlyCost],
                months: list[date], colours: dict[str, Any]) -> dict[str, list[float]]:
    """Each colour's counted cost per month in one currency (labs beyond the ranked ones as
    "other labs"), in stacking order."""
    stacked: dict[tuple[str, date], float] = {}
    for c in costs:
        if c.currency == total.currency:
            key = (c.requester_lab if c.requester_lab in colours else "other labs", c.month)
            stacked[key] = stacked.get(key, 0.0) + float(c.counted_cost)
    return {lab: [stacked.get((lab, month), 0.0) for month in months] for lab in colours}


# The cost panels' y-axis reaches 12 % past the highest stack and the lowest credit (the left
# margin is measured for those tick labels before the panels are drawn).
HEADROOM = 1.12


def stack_range(stacks: dict[str, list[float]]) -> tuple[float, float]:
    """The lowest and highest point of the stacked bars: credits (negative costs) stack down
    from zero, charges up from it."""
    columns = list(zip(*stacks.values(), strict=True))
    low = min((sum(v for v in column if v < 0) for column in columns), default=0.0)
    high = max((sum(v for v in column if v > 0) for column in columns), default=0.0)
    return low, high


def cost_panel(ax: Any, stacks: dict[str, list[float]], months: list[date],
               colours: dict[str, Any], window: figures.Window) -> None:
    """Stacked bars as two collections (complete months, and hatched partial or future ones):
    one artist each instead of a patch per lab and month."""
    from matplotlib.collections import PolyCollection

    states = [window.state(m) for m in months]
    bars: dict[bool, tuple[list[list[tuple[float, float]]], list[Any]]] = {
        True: ([], []), False: ([], [])}
    tops, floors = [0.0] * len(months), [0.0] * len(months)
    for lab, values in stacks.items():
        for x, value in enumerate(values):
            if value != 0:  # a credit is drawn below zero, as the title's total counts it
                ends = tops if value > 0 else floors
                shapes, faces = bars[states[x] == "complete"]
                y0, y1 = ends[x], ends[x] + value
                shapes.append([(x - 0.4, y0), (x - 0.4, y1), (x + 0.4, y1), (x + 0.4, y0)])
                faces.append(colours[lab])
                ends[x] = y1
    for complete, (shapes, faces) in bars.items():
        ax.add_collection(PolyCollection(shapes, facecolors=faces, edgecolors="white",
                                         linewidths=0.3, hatch=None if complete else "//"),
                          autolim=False)
    for x, (state, height) in enumerate(zip(states, tops, strict=True)):
        if state != "complete":
            ax.text(x, height, state, ha="center", va="bottom", fontsize=7)
    # As ax.bar with margins(y=0.12) drew it: from zero, 12 % of headroom, 5 % at the sides.
    side = 0.05 * (len(months) - 0.2)
    ax.set_xlim(-0.4 - side, len(months) - 0.6 + side)  # every panel the same months
    low, high = min(floors, default=0.0), max(tops, default=0.0)  # = stack_range(stacks)
    ax.set_ylim(low * HEADROOM, high * HEADROOM if high > 0 or low < 0 else 1)
    if low < 0:
        ax.axhline(0, color="#444", linewidth=0.6)
    ax.yaxis.set_major_formatter("{x:,.0f}")
