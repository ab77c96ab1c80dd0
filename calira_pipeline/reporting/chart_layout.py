"""Fixed chart layouts, computed from the size of the few texts that set each margin.

matplotlib's constrained layout measured every artist of a figure, then the figure was drawn a
second time to print it: at 1M bookings a large part of the CPU of the marts step's charts. Here
the margins come from the longest labels, measured one by one with the figure's own renderer (the
one it is then drawn with), and each figure is drawn once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from matplotlib.figure import Figure

P = ParamSpec("P")
R = TypeVar("R")
# FreeType's autohinter instead of DejaVu's own hinting bytecode: glyphs as crisp (PNGs no
# larger) and cheaper to lay out and render (one draw of the 1M ranking: 0.16 s, not 0.26 s);
# text is most of what a chart costs to draw.
HINTING = "force_autohint"
PAD = 0.08  # inches: between a figure's edge, or a panel, and the nearest text
TICK = (3.5 + 3.5) / 72  # matplotlib's default tick length plus the tick label's pad, in inches
LABEL_PAD = 4 / 72  # an axis label's pad from its tick labels
TITLE_PAD = 6 / 72  # an axes title's pad above the axes


def pyplot() -> ModuleType:
    """matplotlib, imported on first use: it costs ~0.4 s on every load of the code location."""
    import matplotlib

    matplotlib.use("Agg")  # headless: runs in Dagster step processes and CI without a display
    import matplotlib.pyplot as plt

    return plt


def drawn_in_style(draw: Callable[P, R]) -> Callable[P, R]:
    """`draw` with HINTING in force: set for the whole figure, as text is measured with it.
    rcParams are global: charts are drawn on one thread at a time (the marts step's
    ChartDrawer, or the report's own step). A drawing that raises closes the figures it opened:
    pyplot keeps every open figure (and its pixels) until closed, and the code server and the
    webserver's processes live long."""

    @functools.wraps(draw)
    def styled(*args: P.args, **kwargs: P.kwargs) -> R:
        import matplotlib

        plt = pyplot()
        opened_before = set(plt.get_fignums())
        with matplotlib.rc_context({"text.hinting": HINTING}):
            try:
                return draw(*args, **kwargs)
            except BaseException:
                for number in set(plt.get_fignums()) - opened_before:
                    plt.close(number)
                raise

    return styled


class Layout:
    """Text sizes in inches for one figure, and the panel grid placed by margins in inches."""

    def __init__(self, fig: Figure) -> None:
        from matplotlib.text import Text

        self.fig = fig
        self.renderer: Any = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        self.width, self.height = (float(v) for v in fig.get_size_inches())
        self._probe = Text(0, 0, "")  # one text, never drawn, measured with each string
        self._probe.set_figure(fig)

    def size(self, text: str, fontsize: float) -> tuple[float, float]:
        """Width and height of `text` as matplotlib draws it (lines, `\\$` and all)."""
        if not text:
            return 0.0, 0.0
        self._probe.set_text(text)
        self._probe.set_fontsize(fontsize)
        box = self._probe.get_window_extent(self.renderer)
        return box.width / self.fig.dpi, box.height / self.fig.dpi

    def widest(self, texts: Sequence[str], fontsize: float) -> float:
        """The width of the widest of `texts`, each distinct one measured (a chart has a few
        dozen at most, ~0.5 ms each): a shorter text can be much wider (capitals are ~1.3
        times lower case: 38 of them measured 0.5 in wider than 42 in lower case)."""
        return max((self.size(text, fontsize)[0] for text in sorted(set(texts))), default=0.0)

    def line(self, fontsize: float, lines: int = 1) -> float:
        """Height of `lines` lines of text at `fontsize`."""
        return self.size("\n".join(["Ag"] * lines), fontsize)[1]

    def wrap(self, text: str, fontsize: float, width: float | None = None) -> str:
        """`text` broken at spaces into lines no wider than `width` (the figure's, less pads)."""
        width = self.width - 2 * PAD if width is None else width
        if self.size(text, fontsize)[0] <= width:
            return text
        lines: list[str] = []
        for word in text.split(" "):
            if lines and self.size(f"{lines[-1]} {word}", fontsize)[0] <= width:
                lines[-1] = f"{lines[-1]} {word}"
            else:
                lines.append(word)
        return "\n".join(lines)

    def suptitle(self, parts: Sequence[str], fontsize: float) -> float:
        """The figure title at the top: its parts joined by commas on one line if it fits, else
        a line each (wrapped if need be); returns the height it takes."""
        text = ", ".join(parts)
        if self.size(text, fontsize)[0] > self.width - 2 * PAD:
            text = "\n".join(self.wrap(part, fontsize) for part in parts)
        self.fig.suptitle(text, fontsize=fontsize, y=1 - PAD / self.height, va="top")
        return PAD + self.size(text, fontsize)[1]

    def place(self, left: float, right: float, top: float, bottom: float,
              wspace: float = 0.0, hspace: float = 0.0) -> None:
        """Panels between these margins, `wspace`/`hspace` inches apart (all in inches)."""
        spec = self.fig.axes[0].get_subplotspec()
        rows, cols = spec.get_gridspec().get_geometry() if spec else (1, 1)
        panel_w = (self.width - left - right - (cols - 1) * wspace) / cols
        panel_h = (self.height - top - bottom - (rows - 1) * hspace) / rows
        self.fig.subplots_adjust(
            left=left / self.width, right=1 - right / self.width,
            top=1 - top / self.height, bottom=bottom / self.height,
            wspace=wspace / panel_w if cols > 1 else None,
            hspace=hspace / panel_h if rows > 1 else None,
        )

    def box(self, left: float, bottom: float, width: float, height: float) -> list[float]:
        """A rectangle in inches from the figure's lower left, in figure fractions."""
        return [left / self.width, bottom / self.height, width / self.width,
                height / self.height]
