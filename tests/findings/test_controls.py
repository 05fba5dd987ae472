"""The controls of design 2 on synthetic cells: a failed positive or negative control, or one that
cannot be estimated, marks the run untrustworthy with the reason; the page and the JSON put the
controls first and the red mark at the very top."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _synth import DESIGN2_ARMS, Arm2, design2_records

from bnsearch import claims as ck
from bnsearch.findings._controls import CONTROL_LR, MUST_BE_SUPPORTED, Trust, check_controls
from bnsearch.findings._html import write_findings_html, write_findings_json
from bnsearch.findings._judge import judge
from bnsearch.findings._records import CellRecord

TWIN, ORIGINAL = "bncnn:relu/before#twin", "bncnn:relu/before"


def records(
    changed: dict[str, Arm2] | None = None, *, seeds: int = 5, datasets: tuple[str, ...] = ("digits",)
) -> list[CellRecord]:
    table = {**DESIGN2_ARMS, **(changed or {})}
    return [r for d in datasets for s in range(seeds) for r in design2_records(d, s, table, seed_shift=0.01 * (s % 3))]


def test_a_passing_pair_leaves_the_run_trustworthy() -> None:
    trust = check_controls(records())
    assert trust.trustworthy and trust.reasons == ()
    assert [(c.result.key, c.passed) for c in trust.controls] == [
        (ck.CONTROL_POSITIVE, True),
        (ck.CONTROL_NEGATIVE, True),
    ]
    positive, negative = trust.controls
    assert positive.result.verdict == ck.SUPPORTED and positive.result.ci_low > 10
    assert negative.result.verdict in (ck.EQUIVALENT, ck.INCONCLUSIVE)


@pytest.mark.parametrize(
    ("no_bn", "why"),
    [
        (Arm2(0.95, best_lr=1.0), "it came out equivalent"),  # trains at the high lr as well as BN
        (Arm2(0.90, best_lr=1.0, max_lr=10.0), "reaches below the 10-point margin"),  # a small gain only
    ],
    ids=["no-effect", "small-effect"],
)
def test_a_failed_positive_control_marks_the_run(no_bn: Arm2, why: str) -> None:
    trust = check_controls(records({"plain:relu/none": no_bn, "plain:relu/before": Arm2(0.95, best_lr=1.0)}))
    assert not trust.trustworthy
    (reason,) = trust.reasons
    assert reason.startswith("the positive control failed on digits") and why in reason
    assert MUST_BE_SUPPORTED in reason
    assert [c.passed for c in trust.controls] == [False, True]


def test_a_negative_control_that_comes_out_supported_marks_the_run() -> None:
    trust = check_controls(records({TWIN: Arm2(0.955)}))  # the twin is 1 point better in every seed
    assert not trust.trustworthy
    (reason,) = trust.reasons
    assert reason.startswith("the negative control failed on digits") and "came out supported" in reason
    contradicted = check_controls(records({TWIN: Arm2(0.935)}))
    assert not contradicted.trustworthy and "came out contradicted" in contradicted.reasons[0]


def test_a_control_that_cannot_be_estimated_marks_the_run() -> None:
    without_twin = [r for r in records() if r.arm != TWIN]
    trust = check_controls(without_twin)
    assert not trust.trustworthy
    (reason,) = trust.reasons
    assert "negative control failed" in reason and "could not be estimated" in reason
    # The pre-registered lr is not on the grid: the positive control has no cells.
    off_grid = check_controls(records(), lr=0.5)
    assert not off_grid.trustworthy and "positive control failed" in off_grid.reasons[0]
    assert not check_controls([]).trustworthy


def test_each_dataset_is_checked_and_a_failure_on_one_is_enough() -> None:
    both = records(datasets=("digits", "mnist5k"))
    assert check_controls(both).trustworthy and len(check_controls(both).controls) == 4
    bad = [r for r in both if not (r.dataset == "mnist5k" and r.arm == "plain:relu/none" and r.lr == CONTROL_LR)]
    trust = check_controls(bad)
    assert not trust.trustworthy and trust.reasons[0].startswith("the positive control failed on mnist5k")


def _written(tmp_path: Path, trust: Trust) -> tuple[dict[str, object], str]:
    recs = records(seeds=3)
    results = judge(recs, design=2)
    doc = json.loads(write_findings_json(results, tmp_path / "f.json", trust=trust).read_text())
    page = write_findings_html(results, recs, tmp_path / "f.html", note="synthetic cells", trust=trust).read_text()
    return doc, page


def test_json_and_page_of_a_trustworthy_run(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    doc, page = _written(tmp_path, check_controls(records()))
    assert list(doc) == ["design", "trustworthy", "reasons", "controls", "claims"]
    assert doc["design"] == 2 and doc["trustworthy"] is True and doc["reasons"] == []
    controls = doc["controls"]
    assert isinstance(controls, list) and [c["key"] for c in controls] == [ck.CONTROL_POSITIVE, ck.CONTROL_NEGATIVE]
    assert all(c["passed"] for c in controls)
    rows = doc["claims"]
    assert isinstance(rows, list) and rows[0]["key"] == "plain:bn_accuracy"
    assert all(r["look"] is None and r["seeds_used"] is None for r in rows)
    assert "untrustworthy" not in page.split("<style>")[-1].split("</style>")[-1]
    body = page.split("</style>")[-1]
    assert body.index("Controls passed") < body.index("<h2>Controls</h2>") < body.index("<h2>Verdicts</h2>")
    # Design 2's intervals are repeated ones and its seeds come look by look: the page says so,
    # not design 1's fixed-sample wording.
    assert "repeated 95% confidence" in body and "alpha spending" in body and "95% t-interval" not in body


def test_json_and_page_of_an_untrustworthy_run(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    trust = check_controls(records({TWIN: Arm2(0.955)}))
    doc, page = _written(tmp_path, trust)
    assert doc["trustworthy"] is False and doc["reasons"] == list(trust.reasons)
    body = page.split("</style>")[-1]
    mark = body.index("<div class='untrustworthy'>")
    assert mark < body.index("<h2>Controls</h2>") < body.index("<h2>Verdicts</h2>")
    assert mark < body.index("synthetic cells")  # at the very top, above the run's own note
    assert "the negative control failed on digits" in body[mark : body.index("<h2>Controls</h2>")]


def test_design_1_json_stays_a_list_without_sequential_fields(tmp_path: Path) -> None:
    from _synth import findings_records

    recs = [r for s in range(3) for r in findings_records("digits", s, bn_gain=0.01, seed_shift=0.0)]
    rows = json.loads(write_findings_json(judge(recs), tmp_path / "f.json").read_text())
    assert isinstance(rows, list) and rows[0]["key"] == ck.BN_ACCURACY
    assert not {"look", "seeds_used"} & set(rows[0])
