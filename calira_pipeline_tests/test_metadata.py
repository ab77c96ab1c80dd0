"""API text in Markdown metadata renders as text: no images, links, HTML or formatting."""

from __future__ import annotations

import html
import re

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from calira_pipeline.wiring.metadata import markdown_preview, markdown_text

HOSTILE_NAMES = [
    "![x](http://host/pixel)",
    "[click](https://evil.example/login)",
    '<img src="http://host/pixel.gif">',
    "<script>alert(1)</script>",
    "**bold** _it_ `code` ~~gone~~",
    "# heading",
    "- list item",
    "1. numbered",
    "> quote",
    "a | b | c",
    "line one\nline two\r\nthree",
    "&lt;entity&gt; &amp;",
    "www.evil.example",
    "https://evil.example/track",
    "mail me: boss@evil.example",
    "PCR $\\frac$ unit",
    "\\",
    "[ref]: http://host/x",
]
# CommonMark plus GFM tables: what the Dagster UI renders metadata with (it adds GFM autolinks,
# which the zero-width spaces and the assertions on the text below cover).
RENDERER = MarkdownIt("commonmark").enable("table")
TABLE_TAGS = {"table", "thead", "tbody", "tr", "th", "td", "p"}


def rendered_cells(markdown: str) -> tuple[set[str], list[str]]:
    out = RENDERER.render(markdown)
    tags = {t.lower() for t in re.findall(r"</?([a-zA-Z][a-zA-Z0-9]*)", out)}
    cells = [
        html.unescape(c).replace("\u200b", "")
        for c in re.findall(r"<td>(.*?)</td>", out, flags=re.S)
    ]
    return tags, cells


def test_hostile_names_render_as_their_own_text_in_the_preview() -> None:
    table = pa.table({"id": list(range(len(HOSTILE_NAMES))), "name": HOSTILE_NAMES})
    preview = markdown_preview(table, rows=len(HOSTILE_NAMES))
    tags, cells = rendered_cells(preview)
    assert tags <= TABLE_TAGS, f"unexpected HTML from API text: {tags - TABLE_TAGS}"
    names = cells[1::2]
    assert len(names) == len(HOSTILE_NAMES)
    for got, sent in zip(names, HOSTILE_NAMES, strict=True):
        flat = " ".join(sent.split())
        assert got == (flat if len(flat) <= 40 else flat[:37] + "...")


@pytest.mark.parametrize("text", ["https://x.example/p", "www.x.example", "a@b.example"])
def test_gfm_autolink_patterns_are_broken(text: str) -> None:
    escaped = markdown_text(text).replace("\\", "")
    assert not re.search(r"https?://|www\.|[\w.+-]+@[\w-]+\.", escaped)


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=60))
def test_any_text_renders_as_itself_inside_a_paragraph(text: str) -> None:
    flat = " ".join(text.split())
    out = RENDERER.render(markdown_text(flat))
    tags = set(re.findall(r"</?([a-zA-Z][a-zA-Z0-9]*)", out))
    assert tags <= {"p"}
    body = html.unescape(re.sub(r"</?p>", "", out)).replace("\u200b", "").strip()
    assert body == flat.strip()
