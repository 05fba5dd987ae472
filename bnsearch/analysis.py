"""Studies → pandas: the notebook API and the data behind the report and ``bnsearch export``.

Everything here reads the study database as it is (no second copy of the data). Trial
attributes are read by their names in ``keys.py``, the same names ``search/objective.py`` writes.

```python
from bnsearch.analysis import load_trials, learning_curves
df = load_trials("digits-findings", "sqlite:///studies/bnsearch.db")
df.groupby("has_bn")["final_val_acc"].median()
```
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnsearch import keys
from bnsearch.config import default_storage
from bnsearch.core.space import has_bn
from bnsearch.errors import ConfigError, MissingDependencyError, StudyError

if TYPE_CHECKING:
    import optuna
    import pandas as pd

# The model's settings, in the order the DataFrame shows them (all of TrialParams).
PARAM_COLUMNS = (
    "lr",
    "weight_decay",
    "momentum",
    "batch_size",
    "epochs",
    "activation",
    "bn_placement",
    "bn_classifier",
    "gamma_init",
    "beta_init",
)
CURVE_COLUMNS = (keys.VAL_ACC_CURVE, keys.TRAIN_ACC_CURVE, keys.TRAIN_LOSS_CURVE)
EXPORT_FORMATS = ("csv", "parquet", "json")
DIVERGED_PREFIX = "diverged"  # prune reasons of trials whose loss became NaN/inf start so


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise MissingDependencyError("pandas", "loading trials into a DataFrame") from None
    return pandas


def open_study(study: str | optuna.Study, storage: str | None = None) -> optuna.Study:
    """The study itself, or the study named ``study`` in ``storage`` opened read-only.

    Raises:
        StudyError: the database file or the study does not exist (nothing is created).
    """
    import optuna

    from bnsearch.storages import open_storage
    from bnsearch.study import load_existing

    if isinstance(study, optuna.Study):
        return study
    rdb = open_storage(storage or default_storage(), create=False, heartbeat=False)
    return load_existing(rdb, study)


def _last(values: Sequence[float] | None) -> float:
    return float(values[-1]) if values else math.nan


def _duration_s(t: optuna.trial.FrozenTrial) -> float:
    if t.datetime_start is None:
        return math.nan
    end = t.datetime_complete or datetime.now()
    return (end - t.datetime_start).total_seconds()


def _trial_row(t: optuna.trial.FrozenTrial, include_curves: bool) -> dict[str, Any]:
    ua = t.user_attrs
    # resolved_params holds fixed settings too; a trial killed before writing it has only params.
    resolved = {**t.params, **(ua.get(keys.RESOLVED_PARAMS) or {})}
    val = ua.get(keys.VAL_ACC_CURVE)
    if val is None and t.intermediate_values:  # trials written by other tools
        val = [t.intermediate_values[s] for s in sorted(t.intermediate_values)]
    train_acc = ua.get(keys.TRAIN_ACC_CURVE)
    prune_reason = ua.get(keys.PRUNE_REASON)
    row: dict[str, Any] = {
        "number": t.number,
        "state": t.state.name,
        "value": t.value if t.value is not None else math.nan,
        "datetime_start": t.datetime_start,
        "datetime_complete": t.datetime_complete,
        "duration_s": _duration_s(t),
        "wall_time_s": ua.get(keys.WALL_TIME_S, math.nan),
        "epochs_run": ua.get(keys.EPOCHS_RUN, len(val or [])),
    }
    for name in PARAM_COLUMNS:
        row[name] = resolved.get(name)
    placement = resolved.get("bn_placement")
    # norm "none" (plain, resnet, user nets) leaves no normalisation layer wherever BN was placed.
    row["has_bn"] = (
        None if placement is None else has_bn(placement, bool(resolved.get("bn_classifier")), resolved.get("norm"))
    )
    row["final_val_acc"] = _last(val)
    row["best_val_acc"] = max(val) if val else math.nan
    row["final_train_acc"] = _last(train_acc)
    row["final_train_loss"] = _last(ua.get(keys.TRAIN_LOSS_CURVE))
    row["train_val_gap"] = row["final_train_acc"] - row["final_val_acc"]
    row["val_acc_epoch1"] = float(val[0]) if val else math.nan
    row["diverged"] = bool(prune_reason and str(prune_reason).startswith(DIVERGED_PREFIX))
    row["prune_reason"] = prune_reason
    row["fail_reason"] = ua.get(keys.FAIL_REASON)
    row["device"] = ua.get(keys.DEVICE)
    row["worker"] = ua.get(keys.WORKER)
    row["seed"] = ua.get(keys.TRIAL_SEED)
    if include_curves:
        row[keys.VAL_ACC_CURVE] = list(val or [])
        row[keys.TRAIN_ACC_CURVE] = list(train_acc or [])
        row[keys.TRAIN_LOSS_CURVE] = list(ua.get(keys.TRAIN_LOSS_CURVE) or [])
    return row


_DTYPES = {
    "number": "int64",
    "state": "string",
    "value": "float64",
    "duration_s": "float64",
    "wall_time_s": "float64",
    "epochs_run": "Int64",
    "lr": "float64",
    "weight_decay": "float64",
    "momentum": "float64",
    "batch_size": "Int64",
    "epochs": "Int64",
    "activation": "string",
    "bn_placement": "string",
    "bn_classifier": "boolean",
    "gamma_init": "string",
    "beta_init": "string",
    "has_bn": "boolean",
    "final_val_acc": "float64",
    "best_val_acc": "float64",
    "final_train_acc": "float64",
    "final_train_loss": "float64",
    "train_val_gap": "float64",
    "val_acc_epoch1": "float64",
    "diverged": "bool",
    "prune_reason": "string",
    "fail_reason": "string",
    "device": "string",
    "worker": "string",
    "seed": "Int64",
}


def load_trials(study: str | optuna.Study, storage: str | None = None, *, include_curves: bool = False) -> pd.DataFrame:
    """One row per trial with typed columns, every setting flattened (fixed ones too).

    Columns: ``number``, ``state`` (COMPLETE, PRUNED, FAIL, RUNNING, WAITING), ``value``
    (NaN unless complete), ``duration_s`` (start to end, or to now while running),
    ``wall_time_s`` (training time), ``epochs_run``, one column per model setting
    (``lr`` … ``beta_init``; gamma/beta are ``<NA>`` for nets without BN), ``has_bn``,
    ``final_val_acc``/``final_train_acc``/``final_train_loss`` (last epoch run),
    ``best_val_acc``, ``train_val_gap`` (final train − final val accuracy),
    ``val_acc_epoch1``, ``diverged``, ``prune_reason``, ``fail_reason``, ``device``,
    ``worker``, ``seed``; with ``include_curves`` also the per-epoch lists
    ``val_acc_curve``, ``train_acc_curve``, ``train_loss_curve``.

    ``df.attrs`` holds ``study_name`` and ``searchable`` (the params a sampler chose).

    Args:
        study: A study name (then ``storage`` is opened read-only) or an ``optuna.Study``.
        storage: Storage URL; default ``bnsearch.config.default_storage()``
            ($BNSEARCH_STORAGE, $OPTUNA_STORAGE or the SQLite file).
        include_curves: Add the per-epoch curves as list columns.

    Raises:
        StudyError: no such database or study.
    """
    pd = _pandas()
    st = open_study(study, storage)
    trials = st.get_trials(deepcopy=False)
    searchable = sorted({p for t in trials for p in t.params})
    # Params bnsearch does not know (a study made by other code) get a column each too.
    extra = [p for p in searchable if p not in _DTYPES and p not in PARAM_COLUMNS]
    rows = [{**_trial_row(t, include_curves), **{p: t.params.get(p) for p in extra}} for t in trials]
    columns = [*_DTYPES.keys(), *extra, "datetime_start", "datetime_complete"]
    if include_curves:
        columns += list(CURVE_COLUMNS)
    df = pd.DataFrame(rows, columns=columns)
    order = ["number", "state", "value", "datetime_start", "datetime_complete"]
    df = df[order + [c for c in columns if c not in order]]
    df = df.astype({k: v for k, v in _DTYPES.items()})
    for c in ("datetime_start", "datetime_complete"):
        df[c] = pd.to_datetime(df[c])
    df.attrs["study_name"] = st.study_name
    df.attrs["searchable"] = searchable
    return df


def learning_curves(study: str | optuna.Study, storage: str | None = None) -> pd.DataFrame:
    """Long format: one row per (trial, epoch) with ``val_acc``, ``train_loss``, ``train_acc``.

    Also carries the trial's ``state`` and ``has_bn`` so curves can be split and marked.
    Epochs count from 1. Trials that ran no epoch have no rows.
    """
    pd = _pandas()
    trials = load_trials(study, storage, include_curves=True)
    rows = []
    for r in trials.itertuples(index=False):
        tl, ta = r.train_loss_curve, r.train_acc_curve
        for i, v in enumerate(r.val_acc_curve):
            rows.append(
                {
                    "trial": r.number,
                    "epoch": i + 1,
                    "val_acc": v,
                    "train_loss": tl[i] if i < len(tl) else math.nan,
                    "train_acc": ta[i] if i < len(ta) else math.nan,
                    "state": r.state,
                    "has_bn": r.has_bn,
                }
            )
    df = pd.DataFrame(rows, columns=["trial", "epoch", "val_acc", "train_loss", "train_acc", "state", "has_bn"])
    return df.astype(
        {
            "trial": "int64",
            "epoch": "int64",
            "val_acc": "float64",
            "train_loss": "float64",
            "train_acc": "float64",
            "state": "string",
            "has_bn": "boolean",
        }
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class StudySummary:
    """One line of ``bnsearch studies``."""

    name: str
    strategy: str | None  # sampler the study was created with (None: not a bnsearch study)
    dataset: str | None
    n_complete: int
    n_pruned: int
    n_failed: int
    n_running: int
    best_value: float | None  # best validation accuracy of a complete trial
    last_update: datetime | None  # latest start or end time of any trial


def study_summaries(storage: str | None = None) -> list[StudySummary]:
    """A summary of every study in ``storage`` (read-only), sorted by name.

    Raises:
        StudyError: the database does not exist or cannot be opened.
    """
    from optuna.trial import TrialState

    from bnsearch._optuna import study_id_of
    from bnsearch.storages import open_storage

    rdb = open_storage(storage or default_storage(), create=False, heartbeat=False)
    out = []
    for s in sorted(rdb.get_all_studies(), key=lambda s: s.study_name):
        trials = rdb.get_all_trials(study_id_of(s), deepcopy=False)
        counts = {st: sum(t.state == st for t in trials) for st in TrialState}
        done = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        times = [d for t in trials for d in (t.datetime_start, t.datetime_complete) if d is not None]
        out.append(
            StudySummary(
                name=s.study_name,
                strategy=s.user_attrs.get(keys.STUDY_STRATEGY),
                dataset=s.user_attrs.get(keys.STUDY_DATASET),
                n_complete=counts[TrialState.COMPLETE],
                n_pruned=counts[TrialState.PRUNED],
                n_failed=counts[TrialState.FAIL],
                n_running=counts[TrialState.RUNNING],
                best_value=max(done) if done else None,
                last_update=max(times) if times else None,
            )
        )
    return out


def latest_study(storage: str | None = None) -> str:
    """The name of the study in ``storage`` whose trials changed last (the most recent search).

    Raises:
        StudyError: the storage cannot be opened or holds no study.
    """
    summaries = study_summaries(storage)
    if not summaries:
        from bnsearch.urls import mask_url

        raise StudyError(f"no studies in {mask_url(storage or default_storage())}; run a search first (bnsearch run)")
    oldest = datetime.min
    return max(summaries, key=lambda s: s.last_update or oldest).name


def export_trials(study: str | optuna.Study, storage: str | None, *, fmt: str, out: str | Path | None = None) -> Path:
    """Write one row per trial (settings, state, value, duration, per-epoch curves) to a file.

    CSV cells hold the curves as JSON lists; Parquet and JSON keep them as lists.

    Args:
        fmt: ``csv``, ``parquet`` or ``json`` (records, one object per trial).
        out: Target file; default ``<study name>.<fmt>`` in the current folder.

    Returns:
        The path written.

    Raises:
        ConfigError: unknown format. StudyError: no such database or study.
        MissingDependencyError: Parquet without pyarrow.
    """
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format '{fmt}'; choose one of: {', '.join(EXPORT_FORMATS)}")
    df = load_trials(study, storage, include_curves=True)
    path = Path(out) if out is not None else Path(f"{df.attrs['study_name']}.{fmt}")
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder; give a file name like {path / ('trials.' + fmt)}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise MissingDependencyError("pyarrow", "export --format parquet") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        import json

        flat = df.copy()
        for c in CURVE_COLUMNS:
            flat[c] = flat[c].map(json.dumps)
        flat.to_csv(path, index=False)
    elif fmt == "parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_json(path, orient="records", date_format="iso", indent=1)
    return path
