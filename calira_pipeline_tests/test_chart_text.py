"""Names from the API are drawn in charts as written, never read as mathtext."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib import cbook
from matplotlib.figure import Figure

from calira_pipeline.reporting.chart_text import plain_text

HOSTILE = "PCR $\\frac$ unit"


def draw(label: str) -> bytes:
    fig = Figure(figsize=(2, 1))
    ax = fig.subplots()
    ax.barh([label], [1.0], label=label)
    ax.set_title(label)
    ax.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def test_paired_dollars_break_a_chart_unless_plain_text() -> None:
    with pytest.raises(ValueError):
        draw(HOSTILE)  # what happened before: the marts failed on this name
    assert draw(plain_text(HOSTILE)).startswith(b"\x89PNG")


@settings(max_examples=200)
@given(st.text(alphabet="$\\_ab{}^", max_size=12))
def test_labels_are_never_mathtext_and_unescape_to_the_text(text: str) -> None:
    label = plain_text(text)
    assert not cbook.is_math_text(label)
    shown = label.replace(r"\$", "$")  # what matplotlib draws for non-math text
    assert shown == (" " + text if text.startswith("_") else text)


def test_limit_cuts_before_escaping() -> None:
    assert plain_text("$" * 50, 30) == r"\$" * 30
