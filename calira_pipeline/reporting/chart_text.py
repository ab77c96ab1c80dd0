"""Text from the API made safe to draw in a matplotlib chart."""

from __future__ import annotations


def plain_text(value: object, limit: int | None = None) -> str:
    """``value`` as a chart label that matplotlib draws exactly as written.

    matplotlib reads text between two ``$`` as mathtext, so an instrument named
    ``PCR $\\frac$ unit`` failed every chart; an escaped ``\\$`` is drawn as ``$``. A legend skips
    labels starting with ``_``, so those get a leading space.
    """
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit]
    text = text.replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def label(text: str, width: int = 40) -> str:
    """A data value as literal chart text: `$` would otherwise start matplotlib mathtext."""
    return plain_text(text if len(text) <= width else text[: width - 1] + "…")
