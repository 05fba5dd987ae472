"""The frame every HTML page shares: head, CSS, plotly.js inline, figure blocks, writing the file."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bnsearch.errors import BnsearchError, ConfigError
from bnsearch.pages._plotly_imports import plotly_js

if TYPE_CHECKING:
    import plotly.graph_objects as go

# A verdict's class is its word with "-" for spaces (bnsearch.claims's verdicts).
CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f4f4f4}
.verdict{font-weight:bold}
.supported{color:#1a7f37}.contradicted{color:#b42318}.equivalent{color:#1f4e9c}
.inconclusive,.not-estimable{color:#7a5c00}
"""


def written_at() -> str:
    """The time stamp a page shows, in UTC to the minute."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def figure_div(fig: go.Figure, *, div_id: str | None = None) -> str:
    """One figure as a ``<div>`` that draws itself with the page's inlined plotly.js."""
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            default_width="100%",
            config={"displaylogo": False},
        )
    )


def page_html(*, title: str, body: str, feature: str, css: str = "") -> str:
    """A complete, self-contained HTML document: shared CSS, plotly.js inline, ``body`` as given.

    Args:
        title: The window title and the page's ``<h1>`` (escaped here).
        body: HTML after the heading, already escaped by the caller.
        feature: What the page is, for the missing-plotly message.
        css: Rules the page adds to the shared ones.

    Raises:
        MissingDependencyError: plotly is not installed.
    """
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}{css}</style>\n"
        f'<script type="text/javascript">{plotly_js(feature)}</script></head><body>\n'
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def write_page(path: str | Path, text: str, *, what: str, example_name: str) -> Path:
    """Write ``text`` to ``path`` (its folders created), turning file-system failures into one clear error.

    Args:
        path: The target file.
        text: The page (or JSON) to write.
        what: What is written, for the error message (``"compare page"``).
        example_name: A file name to suggest when ``path`` is a folder.

    Raises:
        ConfigError: ``path`` is a folder.
        BnsearchError: the file cannot be written.
    """
    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"{out} is a folder; give the {what} a file name like {out / example_name}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as e:
        raise BnsearchError(f"cannot write the {what} to {out}: {e.strerror or e}") from None
    return out
