"""The page frame every HTML page shares: one document, plotly.js inline, one clear error per failure."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bnsearch.errors import BnsearchError, ConfigError, MissingDependencyError
from bnsearch.pages import page_html, plotly_go, write_page


def test_a_page_is_self_contained_with_the_shared_css_and_its_own() -> None:
    doc = page_html(title="a <b> page", body="<p>hi</p>", feature="a test page", css=".mine{color:red}")
    assert doc.startswith("<!DOCTYPE html>")
    assert "<title>a &lt;b&gt; page</title>" in doc and "<h1>a &lt;b&gt; page</h1>" in doc
    assert ".mine{color:red}" in doc and ".supported{" in doc
    assert "<script src" not in doc and "Plotly" in doc  # plotly.js is inlined, not fetched


def test_writing_to_a_folder_names_a_file_to_use(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is a folder; give the report a file name like .*report\.html"):
        write_page(tmp_path, "x", what="report", example_name="report.html")


def test_a_file_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BnsearchError, match="cannot write the compare page to .*file/page.html"):
        write_page(blocker / "page.html", "x", what="compare page", example_name="compare.html")


def test_the_folders_are_created(tmp_path: Path) -> None:
    out = write_page(tmp_path / "a" / "b.html", "text", what="page", example_name="b.html")
    assert out.read_text(encoding="utf-8") == "text"


@pytest.mark.parametrize("module", ["plotly.graph_objects", "plotly.offline"])
def test_missing_plotly_names_the_package_and_the_feature(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError, match="the compare page needs the package 'plotly'"):
        plotly_go("the compare page")
        page_html(title="t", body="", feature="the compare page")
