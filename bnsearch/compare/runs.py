"""What a comparison is and what it yields: ``CompareConfig``, ``CompareResult``, and a study's
counted trials as a plain ``Run``. Real mode (``real.py``) and benchmark mode (``surrogate.py``)
both build on this module; ``stats.py`` turns the runs into curves and a ranking.

Runs of one seed share the root seed, hence the data split and each trial number's init
and batch-order seed, so strategies are compared in pairs within a seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bnsearch import keys
from bnsearch.compare.stats import CompareData, Run
from bnsearch.config import DEFAULT_DATASET, DEFAULT_PRUNER, RunConfig, default_storage, default_study_name
from bnsearch.errors import ConfigError
from bnsearch.samplers import get_strategy

if TYPE_CHECKING:
    import optuna

DEFAULT_STRATEGIES = ("random", "tpe", "gp")
DEFAULT_SEEDS = 5
DEFAULT_COMPARE_TRIALS = 40
DEFAULT_PREFIX = "compare"


@dataclass(frozen=True, slots=True, kw_only=True)
class CompareConfig:
    """One comparison: which strategies, how many seeds, and the settings every run shares."""

    strategies: tuple[str, ...] = DEFAULT_STRATEGIES  # names from bnsearch.samplers
    seeds: int = DEFAULT_SEEDS  # runs per strategy, with root seeds first_seed, first_seed+1, ...
    first_seed: int = 0  # root seed of the first run of each strategy
    trials: int = DEFAULT_COMPARE_TRIALS  # finished trials per run (the shared budget)
    dataset: str = DEFAULT_DATASET  # built-in name or path (real mode)
    epochs: int | None = None  # fixes the space's epochs (real mode)
    batch_size: int | None = None  # fixes the space's batch_size (real mode)
    pruner: str = DEFAULT_PRUNER  # the same pruner for every run
    storage: str = field(default_factory=default_storage)  # where the runs' studies live (benchmark: where sources are)
    space_path: str | None = None  # TOML space file (real mode)
    device: str = "auto"
    widths: tuple[int, int] = (32, 64)  # conv channels (real mode)
    prefix: str = DEFAULT_PREFIX  # first part of every run's study name
    benchmark: bool = False  # stand-in objective instead of training
    from_studies: tuple[str, ...] = ()  # benchmark: studies whose trials fit the surrogate
    workers: int = 1  # real mode: runs topped up at the same time, each in its own process
    threads: int | None = None  # torch threads per worker process; default: cores / workers
    mlflow_uri: str | None = None  # real mode: log every trial to this MLflow tracking server
    pack: int | str = "auto"  # trials asked at once and trained together (run --pack)
    model: str = "bncnn"  # real mode: the network every run trains (run --model)

    def validate(self) -> None:
        """Check every option; raise ``ConfigError`` naming the first bad one."""
        if not self.strategies:
            raise ConfigError("--strategies is empty; give a comma-separated list, e.g. random,tpe,gp")
        for name in self.strategies:
            get_strategy(name)
        dupes = sorted({s for s in self.strategies if self.strategies.count(s) > 1})
        if dupes:
            raise ConfigError(f"--strategies names {dupes[0]} twice; list each strategy once")
        for opt, value in (
            ("--seeds", self.seeds),
            ("--trials", self.trials),
            ("--workers", self.workers),
        ):
            if value < 1:
                raise ConfigError(f"{opt} must be ≥ 1, got {value}")
        if not self.prefix.strip() or "/" in self.prefix:
            raise ConfigError(f"--prefix must be a non-empty name without '/', got {self.prefix!r}")
        if self.from_studies and not self.benchmark:
            raise ConfigError("--from-study only applies with --benchmark")
        if self.benchmark and self.model != "bncnn":
            raise ConfigError("--model applies to trained runs; --benchmark trains none, so leave it out")
        if self.benchmark and self.mlflow_uri:
            raise ConfigError("--mlflow-uri logs trained trials; --benchmark trains none, so leave one out")
        if self.benchmark:
            given = [
                o
                for o, v in (
                    ("--epochs", self.epochs),
                    ("--batch-size", self.batch_size),
                    ("--space", self.space_path),
                )
                if v is not None
            ]
            if given:
                raise ConfigError(
                    f"{given[0]} does not apply with --benchmark: the search space, epochs "
                    "included, is the one of the studies the surrogate is fitted to"
                )
        self.run_config(self.strategies[0], self.first_seed).validate()

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))

    def study_name(self, strategy: str, seed: int) -> str:
        """``compare-digits-tpe-s0``: the strategy and the seed are in the name."""
        return f"{self.prefix}-{default_study_name(self.dataset, strategy, self.model)}-s{seed}"

    def run_config(self, strategy: str, seed: int) -> RunConfig:
        """The ``bnsearch run`` configuration of one run (its trials are the whole budget)."""
        return RunConfig(
            strategy=strategy,
            trials=self.trials,
            dataset=self.dataset,
            epochs=self.epochs,
            batch_size=self.batch_size,
            pruner=self.pruner,
            storage=self.storage,
            study_name=self.study_name(strategy, seed),
            space_path=self.space_path,
            seed=seed,
            device=self.device,
            widths=self.widths,
            threads=self.threads,
            save_models="none",  # a comparison ranks strategies; it keeps no models
            mlflow_uri=self.mlflow_uri,
            pack=self.pack,
            model=self.model,
        )

    def default_out_path(self) -> Path:
        """``compare-<dataset>.html``; in benchmark mode ``…-benchmark.html``."""
        stem = Path(default_study_name(self.dataset, "x")).name[: -len("-x")]
        if self.benchmark and self.from_studies:
            stem = self.from_studies[0]
        return Path(f"{self.prefix}-{stem}{'-benchmark' if self.benchmark else ''}.html")


@dataclass(frozen=True, slots=True)
class CompareResult:
    data: CompareData
    study_names: tuple[str, ...]  # every run's study (in-memory ones in benchmark mode)
    trials_run: int  # trials this call ran (0 when every study was already complete)


def counted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that use up the budget: complete or pruned, in the order they ran.

    Failed trials (an interrupt, a crash) are not counted, so a resumed compare runs them
    again; waiting or running ones are not finished yet.
    """
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED)
    return sorted((t for t in study.get_trials(deepcopy=False) if t.state in done), key=lambda t: t.number)


def run_from_study(study: optuna.Study, *, strategy: str, seed: int) -> Run:
    """A study's counted trials as a plain ``Run`` (value None for pruned trials).

    A trial's time is its wall duration (sampler time included) plus, in benchmark mode, the
    training time its stand-in objective represents.
    """
    from optuna.trial import TrialState

    values: list[float | None] = []
    times: list[float] = []
    for t in counted_trials(study):
        values.append(float(t.value) if t.state == TrialState.COMPLETE and t.value is not None else None)
        elapsed = t.duration.total_seconds() if t.duration is not None else 0.0
        times.append(elapsed + float(t.user_attrs.get(keys.SIMULATED_TIME_S, 0.0)))
    return Run(strategy=strategy, seed=seed, values=tuple(values), times_s=tuple(times))
