"""The cost panel draws every lab's monthly counted cost, credits (negative costs) included."""

from __future__ import annotations

from datetime import UTC, date, datetime

from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from calira_pipeline.reporting.chart_panels import cost_panel, stack_range
from calira_pipeline.reporting.figures import Window


def test_a_credit_is_drawn_below_zero_and_the_scale_shows_it() -> None:
    # A month where lab B was refunded more than it was charged: net -40.
    stacks = {"A": [100.0, 30.0], "B": [50.0, -70.0]}
    months = [date(2026, 9, 1), date(2026, 10, 1)]
    window = Window(date(2026, 9, 1), date(2026, 11, 1), datetime(2026, 11, 2, tzinfo=UTC), 2)
    assert stack_range(stacks) == (-70.0, 150.0)
    ax = Figure().add_subplot()
    cost_panel(ax, stacks, months, {"A": "red", "B": "blue"}, window)
    shapes = [
        (round(float(path.vertices[:, 1].min()), 6), round(float(path.vertices[:, 1].max()), 6))
        for collection in ax.collections
        if isinstance(collection, PolyCollection)
        for path in collection.get_paths()
    ]
    assert sorted(shapes) == [(-70.0, 0.0), (0.0, 30.0), (0.0, 100.0), (100.0, 150.0)]
    low, high = ax.get_ylim()
    assert low <= -70 and high >= 150


def test_a_panel_without_cost_keeps_a_unit_scale() -> None:
    window = Window(date(2026, 9, 1), date(2026, 10, 1), datetime(2026, 10, 2, tzinfo=UTC), 1)
    ax = Figure().add_subplot()
    cost_panel(ax, {"A": [0.0]}, [date(2026, 9, 1)], {"A": "red"}, window)
    assert ax.get_ylim() == (0.0, 1.0)
    assert not any(c.get_paths() for c in ax.collections)


def test_the_margin_fits_a_shorter_but_wider_label() -> None:
    """Capitals are ~1.3 times as wide as lower case: an instrument named in capitals is wider
    than longer names in lower case, and the ranking's left margin must fit it too."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from calira_pipeline.reporting.chart_layout import Layout

    fig = Figure(figsize=(9, 5), dpi=100)
    FigureCanvasAgg(fig)
    layout = Layout(fig)
    names = [f"x-ray diffractometer {i:02d} cryo stage (lab {i})" for i in range(6)]
    names.append("NMR 600 MHZ WIDEBORE MAGNET (CHEM WWW)")
    widths = [layout.size(name, 10)[0] for name in names]
    assert max(widths) == widths[-1] and len(names[-1]) < len(names[0])
    assert layout.widest(names, 10) >= max(widths)


def test_labs_are_ranked_by_their_share_of_each_currency_never_by_summed_money() -> None:
    """The cost chart names its top labs (the rest are "other labs"): summed across currencies,
    a lab paying in yen outranked every lab paying in euros."""
    from decimal import Decimal

    from calira_pipeline.reporting.chart_panels import rank_labs

    counted = {
        ("JPY", "Yen small"): Decimal("1000000"),
        ("JPY", "Yen big"): Decimal("9000000"),
        ("EUR", "Euro big"): Decimal("8000.00"),
        ("EUR", "Euro small"): Decimal("2000.00"),
    }
    assert rank_labs(counted, 2) == ["Yen big", "Euro big"]
    assert rank_labs(counted, 4) == ["Yen big", "Euro big", "Euro small", "Yen small"]
    assert rank_labs({("EUR", "A"): Decimal("5"), ("EUR", "B"): Decimal("-5")}, 2) == ["A", "B"]
    assert rank_labs({}, 3) == []


def test_a_chart_that_fails_while_drawing_leaves_no_figure_open() -> None:
    import matplotlib.pyplot as plt
    import pytest

    from calira_pipeline.reporting.chart_layout import drawn_in_style

    kept = plt.figure()  # a figure of someone else's, open before: it stays open

    @drawn_in_style
    def failing_chart() -> None:
        plt.subplots(2, 1)
        plt.figure()
        raise ValueError("the query behind the chart failed")

    try:
        with pytest.raises(ValueError, match="query behind the chart"):
            failing_chart()
        assert plt.get_fignums() == [kept.number]
    finally:
        plt.close(kept)
