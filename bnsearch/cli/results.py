"""The result commands of ``bnsearch``: compare, best, predict, dashboard, studies, report, export.

They hang on ``app``; ``bnsearch.cli`` imports this module after ``run``, so ``--help`` lists
``run`` first. Errors go through ``user_errors`` like every command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from bnsearch.cli.app import (
    ArtifactsOpt,
    MlflowOpt,
    StorageOpt,
    app,
    configure_logging,
    console,
    err_console,
    options,
    stopped_by_signals,
    storage_text,
    storage_url,
    user_errors,
)
from bnsearch.config import DEFAULT_DATASET, DEFAULT_PRUNER
from bnsearch.core.cpu import set_threads
from bnsearch.search.pruners import PRUNER_NAMES

if TYPE_CHECKING:
    import optuna

    from bnsearch.model_folder import BestTrial


@app.command()
def compare(
    strategies: Annotated[
        str, typer.Option(help="Comma-separated strategies to compare, e.g. random,tpe,gp.")
    ] = "random,tpe,gp",
    seeds: Annotated[int, typer.Option(help="Runs per strategy (root seeds --first-seed, --first-seed+1, ...).")] = 5,
    trials: Annotated[int, typer.Option(help="Finished trials per run (the same budget for every run).")] = 40,
    dataset: Annotated[str, typer.Option(help="digits, mnist5k, or a dataset path (as for run).")] = DEFAULT_DATASET,
    epochs: Annotated[int | None, typer.Option(help="Epochs per trial (fixes the space's epochs; default 4).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (fixes the space's batch_size).")] = None,
    pruner: Annotated[
        str, typer.Option(help="Pruner for every run: " + ", ".join(PRUNER_NAMES) + ".")
    ] = DEFAULT_PRUNER,
    storage: StorageOpt = None,
    space: Annotated[
        str | None, typer.Option(help="TOML file that fixes, narrows or extends the search space.")
    ] = None,
    out: Annotated[
        str | None, typer.Option(help="HTML page to write [default: compare-<dataset>[-benchmark].html].")
    ] = None,
    benchmark: Annotated[
        bool,
        typer.Option(
            "--benchmark", help="Run against a surrogate of finished trials instead of training (seconds, not hours)."
        ),
    ] = False,
    from_study: Annotated[
        list[str] | None,
        typer.Option(
            help="With --benchmark: study whose trials fit the surrogate (repeatable) [default: this dataset's compare studies]."
        ),
    ] = None,
    first_seed: Annotated[int, typer.Option(help="Root seed of each strategy's first run.")] = 0,
    prefix: Annotated[
        str, typer.Option(help="First part of the run studies' names: <prefix>-<dataset>-<strategy>-s<seed>.")
    ] = "compare",
    device: Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")] = "auto",
    threads: Annotated[
        int | None,
        typer.Option(
            help="Torch CPU threads per run [default: the cores other processes leave idle right now, split over --workers]."
        ),
    ] = None,
    widths: Annotated[
        str | None, typer.Option(hidden=True, help="Conv channels as W1,W2 (advanced; part of each study's identity).")
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Runs trained at the same time, each in its own process (real mode).")
    ] = 1,
    mlflow_uri: MlflowOpt = None,
    pack: Annotated[
        str,
        typer.Option(
            help="As run --pack: trials asked at once (and, in real mode, trained together as one model) in every run."
        ),
    ] = "auto",
    model: Annotated[
        str,
        typer.Option(
            help="As run --model: the network every run trains (bncnn, plain, resnet or module:function; real mode)."
        ),
    ] = "bncnn",
) -> None:
    """Run every strategy with every seed (resumable), then rank them and write an HTML page."""
    with user_errors():
        from bnsearch.compare import CompareConfig, run_compare
        from bnsearch.compare.html import write_compare_html
        from bnsearch.compare.stats import ranking_rows
        from bnsearch.errors import ConfigError

        try:
            width_pair = tuple(int(w) for w in widths.split(",")) if widths else (32, 64)
        except ValueError:
            raise ConfigError(f"--widths must be two integers like 32,64, got {widths!r}") from None
        if len(width_pair) != 2:
            raise ConfigError(f"--widths must be two integers like 32,64, got {widths!r}")
        cfg = CompareConfig(
            strategies=tuple(s.strip() for s in strategies.split(",") if s.strip()),
            seeds=seeds,
            first_seed=first_seed,
            trials=trials,
            dataset=dataset,
            epochs=epochs,
            batch_size=batch_size,
            pruner=pruner,
            storage=storage_url(storage),
            space_path=space,
            device=device,
            widths=width_pair,
            prefix=prefix,
            benchmark=benchmark,
            from_studies=tuple(from_study or ()),
            workers=workers,
            threads=threads,
            mlflow_uri=mlflow_uri,
            pack=pack,
            model=model,
        )
        configure_logging(options.verbosity)
        cfg.validate()
        set_threads(threads, workers)

        def trial_line(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            value = f" val_acc {trial.value:.4f}" if trial.value is not None else ""
            console.print(f"  {study.study_name} #{trial.number} {trial.state.name.lower()}{value}", highlight=False)

        with stopped_by_signals():
            result = run_compare(
                cfg,
                on_event=lambda line: console.print(line, highlight=False),
                trial_callbacks=[trial_line] if options.verbosity >= 0 else [],
            )
        data = result.data
        console.print(f"[bold]{data.mode_note}[/]", highlight=False)
        console.print(f"ranking ({data.mode} mode, {data.trials} trials × {len(data.seeds)} seeds):", highlight=False)
        rows = ranking_rows(data)
        if rows:
            # Plain aligned text: stays readable in logs and pipes, where rich tables get squeezed.
            widths_ = {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]}
            for line in [dict(zip(rows[0], rows[0], strict=True)), *rows]:
                console.print("  ".join(line[k].ljust(widths_[k]) for k in widths_).rstrip(), highlight=False)
        path = write_compare_html(data, out or cfg.default_out_path())
        console.print(f"wrote {path} ({result.trials_run} trials run now)", highlight=False)


@app.command()
def best(
    study: Annotated[
        str, typer.Option("--study", "--study-name", help="Study whose best trial to show (and retrain).")
    ],
    storage: StorageOpt = None,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain",
            help="Train the best configuration on train+validation, test once, save the model; after a --confirm, the confirmed leader.",
        ),
    ] = False,
    confirm: Annotated[
        int | None,
        typer.Option(
            help="Retrain the K best distinct configurations on --seeds fresh paired seeds and say, with intervals, "
            "whether the leader is distinguishable from the others (stored in the study: resumable, more seeds add "
            "to it); the leader is then scored once on the test split, and --retrain uses it."
        ),
    ] = None,
    seeds: Annotated[
        int | None, typer.Option(help="With --confirm: fresh seeds per configuration (≥ 2). [default: 5]")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="With --confirm: refuse a study of another dataset [default: the study's].")
    ] = None,
    workers: Annotated[
        int, typer.Option(help="With --confirm: cells trained at the same time, each in its own process.")
    ] = 1,
    pack: Annotated[
        int, typer.Option(help="With --confirm: cells trained together as one model; not supported yet (only 1).")
    ] = 1,
    out: Annotated[
        str | None,
        typer.Option(
            help="Model folder to write: --retrain's model [default: models/<study>], else a copy of the saved model [default: none]."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")] = "auto",
    threads: Annotated[
        int | None,
        typer.Option(
            help="Torch CPU threads [default: the cores other processes leave idle right now, split over --workers]."
        ),
    ] = None,
    artifacts: ArtifactsOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="--retrain and --confirm: the study's --model (another one is refused), or where its own module:function factory is now, if it moved (its source must be unchanged) [default: the study's --model]."
        ),
    ] = None,
) -> None:
    """Show a study's best trial and test its saved model once; --confirm checks it against the
    runners-up on fresh seeds; --retrain trains it again on train+validation."""
    with user_errors():
        from bnsearch.errors import ConfigError
        from bnsearch.model_folder import find_best, retrain_best

        url = storage_url(storage)
        if confirm is None:
            for name, value in (("--seeds", seeds), ("--dataset", dataset)):
                if value is not None:
                    raise ConfigError(f"{name} needs --confirm K")
            if workers != 1 or pack != 1:
                raise ConfigError("--workers and --pack need --confirm K")
        else:
            _confirm(
                url,
                study,
                confirm,
                seeds,
                dataset=dataset,
                model=model,
                device=device,
                workers=workers,
                threads=threads,
                pack=pack,
            )
            if not retrain:
                return
        found = find_best(url, study)
        how = (
            f"confirmed leader #{found.number} of {study} (best --confirm, {found.confirmed['seeds']} seeds): "
            if found.confirmed
            else f"best trial #{found.number} of {study}: "
        )
        table = Table(title=f"{how}val_acc {found.val_acc:.4f} ({found.n_complete} complete trials)")
        table.add_column("param")
        table.add_column("value")
        for name in sorted(found.params):
            value = found.params[name]
            table.add_row(name, f"{value:.4g}" if isinstance(value, float) else str(value))
        if found.wall_time_s is not None:
            table.add_row("wall_time_s", f"{found.wall_time_s:.1f}")
        console.print(table)
        if not retrain:
            _show_saved_model(found, url, artifacts, out=out, device=device, threads=threads)
            return
        set_threads(threads, 1)
        folder = out or f"models/{study}"
        console.print(f"retraining on train+validation for {found.params['epochs']} epochs ...", highlight=False)
        res = retrain_best(found, folder, device=device, factory=model)
        console.print(
            f"test accuracy {res.test_acc:.4f} (validation in the search {found.val_acc:.4f}); "
            f"wrote {res.out_dir}/model.pt, config.json, metrics.json\n"
            f"load it with: bnsearch.model_folder.load_model({str(res.out_dir)!r})",
            highlight=False,
        )


def _confirm(
    url: str,
    study: str,
    k: int,
    seeds: int | None,
    *,
    dataset: str | None,
    model: str | None,
    device: str,
    workers: int,
    threads: int | None,
    pack: int,
) -> None:
    """``best --confirm K``: train the missing cells, print the ranking and the verdict."""
    from bnsearch.confirm import ConfirmConfig, confirm_best

    cfg = ConfirmConfig(
        storage=url,
        study=study,
        k=k,
        seeds=5 if seeds is None else seeds,
        dataset=dataset,
        model=model,
        device=device,
        workers=workers,
        threads=threads,
        pack=pack,
    )
    cfg.validate()
    configure_logging(options.verbosity)
    if workers == 1:
        set_threads(threads, 1)
    with stopped_by_signals():
        res = confirm_best(cfg, on_event=lambda line: console.print(line, highlight=False))
    s = res.summary
    console.print(
        f"confirm of {study}: {len(s.configs)} configurations × {s.seeds} fresh paired seeds "
        f"({res.cells_run} of {res.cells_total} cells trained now, {res.wall_time_s:.0f}s)",
        highlight=False,
    )
    rows = [("config", "search val_acc", f"mean val_acc [95% CI] over {s.seeds} seeds", "leader − config (points)")]
    diffs = {d.other.key: d for d in s.differences}
    for c in s.configs:
        d = diffs.get(c.candidate.key)
        gap = (
            "leader"
            if d is None
            else f"{d.compared.interval.mean:+.1f} [{d.compared.interval.low:+.1f}, {d.compared.interval.high:+.1f}]"
        )
        rows.append(
            (
                c.candidate.label,
                f"{c.candidate.search_val_acc:.4f}",
                f"{c.mean.mean:.4f} [{c.mean.low:.4f}, {c.mean.high:.4f}]",
                gap,
            )
        )
    # Plain aligned text, as compare's ranking: readable in logs and pipes.
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        console.print("  ".join(v.ljust(w) for v, w in zip(r, width, strict=True)).rstrip(), highlight=False)
    for d in s.differences:
        console.print(d.sentence, highlight=False)
    console.print(s.verdict, highlight=False)
    scored = "scored once now" if res.test_scored_now else "scored once by an earlier confirm, not again"
    console.print(
        f"test accuracy of the leader {s.leader.label}: {res.test_acc:.4f} (trained on confirm seed 0; {scored})\n"
        f"bnsearch best --study {study} --retrain will retrain {s.leader.label}, the confirmed leader",
        highlight=False,
    )


def _show_saved_model(
    found: BestTrial, storage: str, artifacts: str | None, *, out: str | None, device: str, threads: int | None
) -> None:
    """``best`` without ``--retrain``: the test accuracy of the model the best trial saved."""
    import tempfile

    from bnsearch.model_folder import artifacts_dir, evaluate_saved_model

    if found.saved_model is None:
        console.print(
            f"trial #{found.number} saved no model (runs keep models with --save-models best|all); "
            f"train it again with: bnsearch best --study {found.study_name} --retrain",
            highlight=False,
        )
        return
    set_threads(threads, 1)
    with tempfile.TemporaryDirectory(prefix="bnsearch-best-") as tmp:
        res = evaluate_saved_model(found, artifacts_dir(storage, artifacts), out or tmp, device=device)
    kept = f"; wrote {res.model_dir}/model.pt, config.json" if out else ""
    console.print(
        f"test accuracy {res.test_acc:.4f} of the model trial #{found.number} saved in the search "
        f"(trained on the training split, not retrained; evaluated once now on the test split){kept}\n"
        f"predict with it: bnsearch predict IMAGES.npz --model study:{found.study_name}",
        highlight=False,
    )


@app.command()
def predict(
    images: Annotated[
        str, typer.Argument(help=".npz file with x: raw images (N,H,W), (N,C,H,W) or (N,H,W,C); y optional.")
    ],
    model: Annotated[
        str,
        typer.Option(
            help="Model folder written by bnsearch best --retrain, or study:NAME (the model its best trial saved in the search) or study:NAME:N (trial N's)."
        ),
    ],
    out: Annotated[
        str | None, typer.Option(help="CSV file for index,label,confidence [default: print to stdout].")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "cpu",
    storage: StorageOpt = None,
    artifacts: ArtifactsOpt = None,
) -> None:
    """Predict labels for new images with a saved model (same normalisation as in training)."""
    with user_errors():
        import tempfile

        from bnsearch.model_folder import (
            STUDY_MODEL_PREFIX,
            load_model,
            read_images,
            saved_model_folder,
            write_predictions_csv,
        )

        with tempfile.TemporaryDirectory(prefix="bnsearch-model-") as tmp:
            if model.startswith(STUDY_MODEL_PREFIX):
                model = str(saved_model_folder(model, storage_url(storage), artifacts, tmp))
            loaded = load_model(model, device=device)
        x, y = read_images(images)
        proba = loaded.predict_proba(x)
        labels = loaded.predict(x)
        if out is None:
            typer.echo("index,label,confidence")
            for i, (lab, p) in enumerate(zip(labels.tolist(), proba.max(axis=1).tolist(), strict=True)):
                typer.echo(f"{i},{lab},{p:.6f}")
        else:
            path = write_predictions_csv(out, labels, proba)
            console.print(f"wrote {len(labels)} predictions to {path}", highlight=False)
        if y is not None:
            # Printed to stderr so that stdout stays a clean CSV.
            err_console.print(f"accuracy against y in {images}: {float((labels == y).mean()):.4f}", highlight=False)


# ---- results: dashboard, studies, report, export (issue 5) ----

_STUDY_HELP = "Name of the study (see `bnsearch studies`)."
StudyOpt = Annotated[str, typer.Option("--study", "--study-name", help=_STUDY_HELP)]


@app.command()
def dashboard(
    storage: StorageOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free port).")] = 8080,
    artifacts: ArtifactsOpt = None,
) -> None:
    """Browse the studies and the trials' saved models with optuna-dashboard (Ctrl-C stops it)."""
    with user_errors():
        configure_logging(options.verbosity)
        import logging

        from bnsearch.dashboard import start_dashboard
        from bnsearch.processes import interrupts_raise

        url_ = storage_url(storage)
        level = logging.INFO if options.verbosity > 0 else logging.WARNING
        # SIGTERM as well as Ctrl-C, from the first moment: the server process never outlives this one.
        with interrupts_raise():
            try:
                board = start_dashboard(url_, host=host, port=port, artifacts=artifacts, log_level=level)
                models = f", saved models from {board.artifacts}" if board.artifacts is not None else ""
                console.print(
                    f"optuna-dashboard on {storage_text(url_)}{models}: {board.url}  (Ctrl-C to stop)",
                    highlight=False,
                )
                board.wait_until_interrupted()
            except KeyboardInterrupt:
                pass  # start_dashboard stopped its server process before letting this through
        console.print("dashboard stopped", highlight=False)


@app.command()
def studies(
    storage: StorageOpt = None,
) -> None:
    """List the studies in a storage: strategy, dataset, trial counts, best value, last update."""
    with user_errors():
        from bnsearch.analysis import study_summaries

        url = storage_url(storage)
        rows = study_summaries(url)
        err_console.print(  # stderr: stdout stays one line per study, for scripts
            f"{len(rows) or 'no'} stud{'y' if len(rows) == 1 else 'ies'} in {storage_text(url)}",
            highlight=False,
            soft_wrap=True,
        )
        for s in rows:
            best = "-" if s.best_value is None else f"{s.best_value:.4f}"
            last = "-" if s.last_update is None else s.last_update.strftime("%Y-%m-%d %H:%M:%S")
            running = f", {s.n_running} running" if s.n_running else ""
            console.print(
                f"{s.name}  strategy={s.strategy or '-'}  dataset={s.dataset or '-'}  "
                f"complete={s.n_complete} pruned={s.n_pruned} failed={s.n_failed}{running}  "
                f"best={best}  last_update={last}",
                highlight=False,
                markup=False,
            )


@app.command()
def report(
    study: StudyOpt,
    storage: StorageOpt = None,
    out: Annotated[str | None, typer.Option(help="HTML file to write [default: <study>-report.html].")] = None,
) -> None:
    """Write one self-contained HTML report (figures and BN findings; opens offline)."""
    with user_errors():
        configure_logging(options.verbosity)
        from bnsearch.report import write_report

        url = storage_url(storage)
        path = write_report(study, url, out=out)
        console.print(f"wrote {path} (study {study} in {storage_text(url)})", highlight=False, markup=False)


@app.command()
def export(
    study: StudyOpt,
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or json.")] = "csv",
    storage: StorageOpt = None,
    out: Annotated[str | None, typer.Option(help="File to write [default: <study>.<format>].")] = None,
) -> None:
    """Export one row per trial: settings, state, value, duration and per-epoch curves."""
    with user_errors():
        from bnsearch.analysis import export_trials

        url = storage_url(storage)
        path = export_trials(study, url, fmt=fmt, out=out)
        console.print(f"wrote {path} (study {study} in {storage_text(url)})", highlight=False, markup=False)
