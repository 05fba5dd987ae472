"""``bnsearch findings``: the designed experiment (resumable), its verdicts, the page and JSON."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from bnsearch.cli.app import (
    StorageOpt,
    app,
    configure_logging,
    console,
    options,
    stopped_by_signals,
    storage_text,
    storage_url,
    user_errors,
)
from bnsearch.core.cpu import set_threads


@app.command()
def findings(
    datasets: Annotated[
        str | None, typer.Option(help="Comma-separated built-in datasets [default: digits,mnist5k; --quick: digits].")
    ] = None,
    seeds: Annotated[
        int | None, typer.Option(help="Seeds (replicates) per dataset: root seeds 0..N-1 [default: 5; --quick: 3].")
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="digits with 3 seeds (minutes on 2 CPU cores).")] = False,
    storage: StorageOpt = None,
    out: Annotated[str, typer.Option(help="HTML page to write.")] = "findings.html",
    json_path: Annotated[
        str | None, typer.Option("--json", help="Also write the verdicts as JSON (one object per claim × dataset).")
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Dataset × seed studies trained at the same time, each in its own process.")
    ] = 1,
    pack: Annotated[
        int, typer.Option(help="Grid cells of one arm trained together as one packed model (1: one at a time).")
    ] = 1,
    threads: Annotated[
        int | None,
        typer.Option(
            help="Torch CPU threads per worker [default: the cores other processes leave idle, split over --workers]."
        ),
    ] = None,
    prefix: Annotated[
        str, typer.Option(help="First part of the studies' names: <prefix>-<dataset>-s<seed>.")
    ] = "findings",
    model: Annotated[
        str,
        typer.Option(
            help="The net every cell trains: bncnn (the article's) or plain (a deep plain CNN at its default depth and width; studies <prefix>-plain-<dataset>-s<seed>)."
        ),
    ] = "bncnn",
    design: Annotated[
        int,
        typer.Option(
            help="Which design: 1 (the 2-conv net's arms) or 2 (issue 24: the article's net, a deep plain net and a resnet; lr grid 1e-4…10, stable-lr probe, larger held-out splits; studies <prefix>2-<dataset>-s<seed>)."
        ),
    ] = 1,
) -> None:
    """Run the designed BN experiment (paired by seed, resumable) and write verdicts with 95% intervals."""
    with user_errors():
        from bnsearch.findings import FindingsConfig, judge, run_experiment, write_findings_html, write_findings_json
        from bnsearch.findings._design import default_run

        default_ds, default_seeds = default_run(design, quick=quick)
        cfg = FindingsConfig(
            datasets=tuple(d.strip() for d in datasets.split(",") if d.strip()) if datasets is not None else default_ds,
            seeds=default_seeds if seeds is None else seeds,
            storage=storage_url(storage),
            workers=workers,
            threads=threads,
            pack=pack,
            prefix=prefix,
            model=model,
            design=design,
        )
        cfg.validate()
        configure_logging(options.verbosity)
        set_threads(threads, workers)
        start = time.perf_counter()
        counter = {"done": 0}

        def say(line: str) -> None:
            if options.verbosity >= 0:
                console.print(line, highlight=False)

        def cell_line(dataset: str, seed: int, cell: object, attrs: dict[str, object]) -> None:
            counter["done"] += 1
            elapsed = time.perf_counter() - start
            scored = (
                f"{'stable' if attrs['probe_stable'] else 'unstable'}"
                if "probe_stable" in attrs
                else f"test {attrs['test_acc']:.3f}"
            )
            say(
                f"  [{counter['done']}] {dataset} s{seed} {getattr(cell, 'key', cell)}: val {attrs['val_acc']:.3f} "
                f"{scored}{' diverged' if attrs['diverged'] else ''} "
                f"({attrs['wall_time_s']:.1f} s; {elapsed / 60:.1f} min elapsed)"
            )

        say(
            f"findings (design {cfg.design}): {', '.join(cfg.datasets)} × {cfg.seeds} seeds "
            f"in {storage_text(cfg.storage)}"
        )
        if cfg.design == 2:
            from bnsearch.findings._design2 import estimate_wall_s

            say(
                f"estimated training time at most {estimate_wall_s(cfg) / 60:.0f} min with {cfg.workers} worker(s) "
                "(measured seconds per cell on a 2-core CPU; cells already trained not subtracted)"
            )
        with stopped_by_signals():
            summary = run_experiment(cfg, on_event=say, on_cell=cell_line)
        results = judge(summary.records, design=cfg.design)
        trust = None
        if cfg.design == 2:
            from bnsearch.findings import check_controls
            from bnsearch.findings._design2 import POSITIVE_CONTROL_LR

            trust = check_controls(summary.records, lr=POSITIVE_CONTROL_LR)
            say(
                "controls passed: the run can be trusted"
                if trust.trustworthy
                else f"UNTRUSTWORTHY: {'; '.join(trust.reasons)}"
            )
        for r in results:
            if r.primary:
                say(f"{r.key} [{r.dataset}] {r.verdict}{' (replicated)' if r.replicated else ''}: {r.sentence}")
        note = (
            f"{len(cfg.datasets)} dataset(s) ({', '.join(cfg.datasets)}) × {cfg.seeds} seeds; "
            f"{len(summary.records)} cells; studies {cfg.prefix}{'2' if cfg.design == 2 else ''}-<dataset>-s<seed>."
        )
        path = write_findings_html(results, summary.records, out, note=note, trust=trust)
        say(f"wrote {path} ({summary.cells_run} cells trained now, {(time.perf_counter() - start) / 60:.1f} min)")
        if json_path:
            say(f"wrote {write_findings_json(results, json_path, trust=trust)}")
