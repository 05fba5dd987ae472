"""``bnsearch findings``: the designed experiment (resumable), its verdicts, the page and JSON."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

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
from bnsearch.config import resolve_device
from bnsearch.core.cpu import set_backends, set_threads
from bnsearch.errors import ConfigError

if TYPE_CHECKING:
    from bnsearch.stats import SequentialPlan


@app.command()
def findings(
    datasets: Annotated[
        str | None, typer.Option(help="Comma-separated built-in datasets [default: digits,mnist5k; --quick: digits].")
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(
            help="Design 1 only: seeds (replicates) per dataset, root seeds 0..N-1 [default: 5; --quick: 3]. Design 2 uses --looks."
        ),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="digits with 3 seeds, one look (minutes on 2 CPU cores).")
    ] = False,
    looks: Annotated[
        str | None,
        typer.Option(
            help="Design 2: cumulative seeds at each pre-registered look, comma-separated; after each look only undecided claims get more seeds [default: 5,10,15; --quick: 3]."
        ),
    ] = None,
    spending: Annotated[
        str | None,
        typer.Option(
            help="Design 2: how alpha is spent over the looks: pocock (the same boundary at every look) or obrien-fleming (strict early, lenient last) [default: pocock]."
        ),
    ] = None,
    storage: StorageOpt = None,
    out: Annotated[str, typer.Option(help="HTML page to write.")] = "findings.html",
    json_path: Annotated[
        str | None, typer.Option("--json", help="Also write the verdicts as JSON (one object per claim × dataset).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Dataset × seed studies trained at the same time, each in its own process, all on --device [design 1: 1; design 2: one per idle core on the CPU, 1 on a GPU]."
        ),
    ] = None,
    pack: Annotated[
        int,
        typer.Option(
            help="Grid cells of one arm trained together as one packed model (1: one at a time); probes and cells with a validation curve train one by one."
        ),
    ] = 1,
    device: Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")] = "cpu",
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
            help="Design 1 only: the net every cell trains: bncnn (the article's) or plain (a deep plain CNN at its default depth and width; studies <prefix>-plain-<dataset>-s<seed>)."
        ),
    ] = "bncnn",
    design: Annotated[
        int,
        typer.Option(
            help="Which design: 2 (the article's net, a deep plain net and a resnet; lr grid 1e-4…10, stable-lr probe, larger held-out splits, looks, controls; studies <prefix>2-<dataset>-s<seed>) or 1 (the first design: the 2-conv net's arms, a fixed number of seeds)."
        ),
    ] = 2,
) -> None:
    """Run the designed BN experiment (paired by seed, resumable) and write verdicts with 95% intervals."""
    with user_errors():
        from bnsearch.findings import FindingsConfig, judge, run_experiment, write_findings_html, write_findings_json
        from bnsearch.findings._design import default_run

        default_ds, default_seeds = default_run(design, quick=quick)
        plan = sequential_plan(design, looks, spending, seeds=seeds, quick=quick)
        device = resolve_device(device)
        if workers is None:
            from bnsearch.search.workers import auto_workers

            # On a GPU one process: every worker would share the one --device.
            workers = auto_workers("cpu", seeded=False) if design == 2 and device == "cpu" else 1
        cfg = FindingsConfig(
            datasets=tuple(d.strip() for d in datasets.split(",") if d.strip()) if datasets is not None else default_ds,
            seeds=plan.looks[0] if plan is not None else default_seeds if seeds is None else seeds,
            storage=storage_url(storage),
            workers=workers,
            threads=threads,
            pack=pack,
            device=device,
            prefix=prefix,
            model=model,
            design=design,
        )
        cfg.validate()
        configure_logging(options.verbosity)
        set_threads(threads, workers)
        set_backends(device)
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

        seeds_text = f"looks at {','.join(map(str, plan.looks))} seeds" if plan else f"{cfg.seeds} seeds"
        where = f"on {cfg.device}" + (f" in packs of {cfg.pack}" if cfg.pack > 1 else "")
        say(
            f"findings (design {cfg.design}): {', '.join(cfg.datasets)}, {seeds_text}, {where}, "
            f"in {storage_text(cfg.storage)}"
        )
        trust = None
        if plan is not None:
            from bnsearch.findings import run_looks

            with stopped_by_signals():
                run = run_looks(cfg, plan, on_event=say, on_cell=cell_line)
            results, records, cells_run, trust = list(run.results), run.records, run.cells_run, run.trust
            say(
                "controls passed: the run can be trusted"
                if trust.trustworthy
                else f"[bold red]UNTRUSTWORTHY[/]: {'; '.join(trust.reasons)}"
            )
        else:
            with stopped_by_signals():
                summary = run_experiment(cfg, on_event=say, on_cell=cell_line)
            results, records, cells_run = judge(summary.records, design=cfg.design), summary.records, summary.cells_run
        for r in results:
            if r.primary:
                say(f"{r.key} [{r.dataset}] {r.verdict}{' (replicated)' if r.replicated else ''}: {r.sentence}")
        design_text = (
            f"looks at {', '.join(map(str, plan.looks))} seeds ({plan.spending.replace('_', '-')} alpha spending)"
            if plan
            else f"{cfg.seeds} seeds"
        )
        note = (
            f"{len(cfg.datasets)} dataset(s) ({', '.join(cfg.datasets)}), {design_text}; "
            f"{len(records)} cells; studies {cfg.prefix}{'2' if cfg.design == 2 else ''}-<dataset>-s<seed>."
        )
        path = write_findings_html(results, records, out, note=note, trust=trust)
        say(f"wrote {path} ({cells_run} cells trained now, {(time.perf_counter() - start) / 60:.1f} min)")
        if json_path:
            say(f"wrote {write_findings_json(results, json_path, trust=trust)}")


def sequential_plan(
    design: int, looks: str | None, spending: str | None, *, seeds: int | None, quick: bool
) -> SequentialPlan | None:
    """Design 2's looks and alpha spending from the options (None for design 1).

    Raises:
        ConfigError: looks or spending for design 1, --seeds for design 2, or looks that are not
            increasing integers starting at 2 or more.
    """
    from bnsearch.findings._design import DEFAULT_LOOKS2, DEFAULT_SPENDING, QUICK_LOOKS2
    from bnsearch.stats import SPENDING_KINDS, SequentialPlan

    kinds = [k.replace("_", "-") for k in SPENDING_KINDS]
    if design != 2:
        if looks is not None or spending is not None:
            raise ConfigError("--looks and --spending apply to --design 2 only")
        return None
    if seeds is not None:
        raise ConfigError(
            "--seeds is design 1's (add --design 1); design 2 adds seeds look by look: use --looks, e.g. --looks 5,10,15"
        )
    spending = DEFAULT_SPENDING if spending is None else spending
    if spending not in kinds:
        raise ConfigError(f"--spending must be one of: {', '.join(kinds)}, got '{spending}'")
    counts: tuple[int, ...]
    if looks is None:
        counts = QUICK_LOOKS2 if quick else DEFAULT_LOOKS2
    else:
        try:
            counts = tuple(int(x) for x in looks.split(",") if x.strip())
        except ValueError:
            raise ConfigError(f"--looks must be comma-separated seed counts, e.g. 5,10,15; got '{looks}'") from None
    if not counts or counts[0] < 2 or any(b <= a for a, b in zip(counts, counts[1:], strict=False)):
        raise ConfigError(
            f"--looks must be increasing seed counts, the first at least 2 (an interval needs two seeds); got '{looks}'"
        )
    return SequentialPlan(looks=counts, spending=spending.replace("-", "_"))
