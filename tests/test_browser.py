"""The HTML pages in a real browser: the report, the compare page and the findings page opened in
headless Chromium, as a user opens the file, with no JavaScript error and every figure drawn.

Each page is loaded from ``file://`` with no network (plotly.js is inline), the DOM dumped after
the page settled, and each plot container checked for the SVG plotly draws into it. JavaScript
errors (uncaught, unhandled rejections, ``console.error``) are recorded by a script put first in
a copy of the page's ``<head>``. Skipped when Chromium is missing, except under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _synth import findings_records, make_study

pytestmark = pytest.mark.slow

_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Runs before any of the page's scripts; what it records ends up in the dumped DOM.
_RECORDER = """<script>(function () {
  var root = document.documentElement;
  function note(text) { root.setAttribute("data-js-errors", (root.getAttribute("data-js-errors") || "") + text + "\\n"); }
  window.addEventListener("error", function (e) { note("error: " + e.message + " at " + e.filename + ":" + e.lineno); });
  window.addEventListener("unhandledrejection", function (e) { note("unhandled rejection: " + e.reason); });
  var consoleError = console.error;
  console.error = function () { note("console.error: " + Array.prototype.join.call(arguments, " ")); consoleError.apply(console, arguments); };
  window.addEventListener("load", function () { root.setAttribute("data-loaded", "yes"); });
})();</script>"""
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found is None:
        reason = "chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; CI must run the browser check")
        pytest.skip(reason)
    return found


@dataclass
class _PlotFinder(HTMLParser):
    """Every plotly graph container of a DOM and whether plotly drew its SVG inside it."""

    drawn: list[bool] = field(default_factory=list)  # one per container, in page order
    root: dict[str, str | None] = field(default_factory=dict)  # the <html> element's attributes
    _open: list[tuple[str, int | None]] = field(default_factory=list)  # tag, index into drawn

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.root = dict(attrs)
        classes = (dict(attrs).get("class") or "").split()
        if tag == "svg" and "main-svg" in classes:
            for _, index in self._open:
                if index is not None:
                    self.drawn[index] = True
        index = None
        if tag == "div" and "plotly-graph-div" in classes:
            self.drawn.append(False)
            index = len(self.drawn) - 1
        if tag not in _VOID:
            self._open.append((tag, index))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                del self._open[i:]
                return


@dataclass(frozen=True)
class _Opened:
    dom: str
    drawn: list[bool]
    errors: str
    loaded: bool


def _open(chromium: str, page: Path, tmp: Path) -> _Opened:
    text = page.read_text(encoding="utf-8")
    assert "<head>" in text
    checked = tmp / f"checked-{page.name}"
    checked.write_text(text.replace("<head>", "<head>" + _RECORDER, 1), encoding="utf-8")
    profile = tmp / f"profile-{page.stem}"
    cmd = [chromium, *_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom"]
    out = subprocess.run([*cmd, checked.as_uri()], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    finder = _PlotFinder()
    finder.feed(out.stdout)
    return _Opened(
        dom=out.stdout,
        drawn=finder.drawn,
        errors=finder.root.get("data-js-errors") or "",
        loaded=finder.root.get("data-loaded") == "yes",
    )


def _report(tmp: Path) -> tuple[Path, int]:
    from bnsearch.report import all_figures, build_report_data, write_html

    specs = [
        {"activation": a, "bn_placement": p, "gamma_init": g, "lr": lr, "val": (0.3 + lr / 4, 0.6 + lr / 4)}
        for a in ("relu", "tanh")
        for p in ("none", "before_activation", "after_activation")
        for g in ("ones", "zeros")
        for lr in (0.01, 0.1, 1.0)
    ]
    data = build_report_data(make_study(specs))
    figures = all_figures(data)
    return write_html(data, figures, tmp / "report.html"), len(figures)


def _compare(tmp: Path) -> tuple[Path, int]:
    from bnsearch.compare import write_compare_html
    from bnsearch.compare.stats import Run, build_compare_data

    runs = [
        Run(s, seed, tuple(0.5 + 0.1 * seed + 0.05 * i * (s == "tpe") for i in range(5)), (1.0,) * 5)
        for s in ("random", "tpe")
        for seed in range(3)
    ]
    data = build_compare_data(runs, trials=5, mode="real", mode_note="REAL: every trial trained")
    return write_compare_html(data, tmp / "compare.html"), 4


def _findings(tmp: Path) -> tuple[Path, int]:
    from bnsearch.findings import judge, write_findings_html

    records = [
        r
        for d in ("digits", "mnist5k")
        for seed in range(3)
        for r in findings_records(d, seed, bn_gain=0.02, seed_shift=0.01 * seed)
    ]
    return write_findings_html(judge(records), records, tmp / "findings.html", note="synthetic cells"), 2


def _findings2(tmp: Path) -> tuple[Path, int]:
    """A design-2 page of synthetic cells whose positive control fails: the red mark heads it."""
    from dataclasses import replace

    from _synth import design2_records

    from bnsearch.findings import check_controls, judge, write_findings_html
    from bnsearch.findings._design2 import POSITIVE_CONTROL_LR
    from bnsearch.stats import SequentialPlan

    records = [r for d in ("digits", "mnist5k") for seed in range(3) for r in design2_records(d, seed)]
    # The net without BN trains at the control's lr as well as with BN: the control must fail.
    records = [
        replace(r, val_acc=0.95, test_acc=0.95, diverged=False)
        if r.arm == "plain:relu/none" and abs(r.lr - POSITIVE_CONTROL_LR) < 1e-9
        else r
        for r in records
    ]
    trust = check_controls(records, lr=POSITIVE_CONTROL_LR)
    assert not trust.trustworthy
    results = judge(records, design=2, plan=SequentialPlan(looks=(3,)))
    page = write_findings_html(results, records, tmp / "findings2.html", note="synthetic cells", trust=trust)
    return page, page.read_text(encoding="utf-8").count('class="plotly-graph-div"')


@pytest.mark.parametrize(
    "write", [_report, _compare, _findings, _findings2], ids=["report", "compare", "findings", "findings-design-2"]
)
def test_a_page_opens_without_errors_and_draws_every_figure(chromium: str, tmp_path: Path, write) -> None:  # type: ignore[no-untyped-def]
    page, n_figures = write(tmp_path)
    assert "<script src=" not in page.read_text(encoding="utf-8")  # nothing to fetch: opens offline
    opened = _open(chromium, page, tmp_path)
    assert opened.loaded, "the page did not finish loading"
    assert opened.errors == "", f"JavaScript errors:\n{opened.errors}"
    assert len(opened.drawn) == n_figures, f"{len(opened.drawn)} plot containers, expected {n_figures}"
    assert all(opened.drawn), (
        f"figures without their SVG (page order): {[i for i, d in enumerate(opened.drawn) if not d]}"
    )
    if write is _findings2:  # the red mark and the controls come before every verdict
        dom = opened.dom
        assert "This run is untrustworthy: a control failed." in dom
        assert dom.index("untrustworthy") < dom.index("<h2>Controls</h2>") < dom.index("<h2>Verdicts</h2>")


def test_the_check_sees_a_javascript_error_and_an_undrawn_figure(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head></head><body><div class="plotly-graph-div"></div>'
        "<script>undefinedFunction();</script></body></html>",
        encoding="utf-8",
    )
    opened = _open(chromium, page, tmp_path)
    assert opened.loaded and "undefinedFunction" in opened.errors
    assert opened.drawn == [False]
