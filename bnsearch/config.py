"""The run's frozen configuration: what the CLI (or a notebook) asks for, validated in one place."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnsearch.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_STORAGE = "sqlite:///studies/bnsearch.db"
# Environment variables that replace DEFAULT_STORAGE, the first one set wins; OPTUNA_STORAGE is
# the name Optuna's own CLI reads, so one variable serves both tools on a cluster.
STORAGE_ENV_VARS = ("BNSEARCH_STORAGE", "OPTUNA_STORAGE")
DEFAULT_DATASET = "mnist5k"
DEFAULT_TRIALS = 30
# On the default search (tpe, 30 trials × 4 epochs, mnist5k) percentile pruning trained half
# the epochs of no pruning with the same best accuracy over 3 seeds, where median saved a
# third (benchmarks/pruning.py; figures in benchmarks/README.md).
DEFAULT_PRUNER = "percentile"
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N, mps"
PRECISION_CHOICES = ("auto", "fp32", "bf16")
# --save-models: keep every complete trial's model, each that was the study's best when it
# finished, or none.
SAVE_MODE_ALL = "all"
SAVE_MODE_BEST = "best"
SAVE_MODE_NONE = "none"
SAVE_MODES = (SAVE_MODE_BEST, SAVE_MODE_ALL, SAVE_MODE_NONE)
DEFAULT_SAVE_MODE = SAVE_MODE_BEST


def default_storage() -> str:
    """``$BNSEARCH_STORAGE``, else ``$OPTUNA_STORAGE``, else ``sqlite:///studies/bnsearch.db``."""
    for var in STORAGE_ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return value
    return DEFAULT_STORAGE


def storage_origin(url: str) -> str:
    """Where ``url`` came from, for the line that names the storage: `` (from $VAR)`` or ``""``."""
    for var in STORAGE_ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return f" (from ${var})" if value == url else ""
    return ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """Everything one ``bnsearch run`` needs. Build it, then call ``validate()``."""

    strategy: str = "tpe"  # sampler name from bnsearch.samplers
    trials: int = DEFAULT_TRIALS  # trials this invocation adds to the study
    max_trials: int | None = None  # study-wide total, whoever adds them (None: no limit)
    timeout_s: float | None = None  # stop starting new trials after this many seconds
    dataset: str = DEFAULT_DATASET  # built-in name or a path
    epochs: int | None = None  # fixes the space's epochs when given
    batch_size: int | None = None  # fixes the space's batch_size when given
    pruner: str = DEFAULT_PRUNER  # pruner name from bnsearch.search.pruners
    # SQLAlchemy URL or journal:///file.log; default from the environment (default_storage)
    storage: str = field(default_factory=default_storage)
    study_name: str | None = None  # default: "<dataset>-<strategy>"
    space_path: str | None = None  # TOML file overriding the default space
    seed: int = 0  # root seed: splits, trial init and batch order, sampler
    device: str = "auto"  # auto: cuda, then mps, then cpu
    threads: int | None = None  # torch CPU threads per worker; default: all cores / workers
    widths: tuple[int, int] = (32, 64)  # conv channels of bncnn; part of the study's identity
    # The network: bncnn, plain, resnet, or a user factory package.module:function /
    # path/file.py:function; part of the study's identity
    model: str = "bncnn"
    workers: int = 1  # worker processes sharing the storage
    # auto, fp32 or bf16 (autocast); the resolved fp32/bf16 is part of the study's identity
    precision: str = "auto"
    strategy_options: dict[str, Any] = field(default_factory=dict)  # e.g. skopt estimator
    save_models: str = DEFAULT_SAVE_MODE  # best, all or none: trial models kept in the artifact store
    artifacts: str | None = None  # artifact-store folder; default beside the SQLite database
    mlflow_uri: str | None = None  # MLflow tracking URI: one MLflow run per trial (needs mlflow)
    # Trials trained together as one packed model per worker: "auto" or a count ≥ 1
    pack: int | str = "auto"

    def validate(self) -> None:
        """Check every option; raise ``ConfigError`` naming the first bad one."""
        from bnsearch.samplers import get_strategy
        from bnsearch.search.pruners import PRUNER_NAMES

        get_strategy(self.strategy).validate_options(self.strategy_options)
        if self.pruner not in PRUNER_NAMES:
            raise ConfigError(f"unknown pruner '{self.pruner}'; choose one of: {', '.join(PRUNER_NAMES)}")
        for name, value in (("--trials", self.trials), ("--workers", self.workers), ("--max-trials", self.max_trials)):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {value}")
        for name, opt in (("--epochs", self.epochs), ("--batch-size", self.batch_size), ("--threads", self.threads)):
            if opt is not None and opt < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {opt}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError(f"--timeout must be > 0 seconds, got {self.timeout_s:g}")
        if any(w < 1 for w in self.widths):
            raise ConfigError(f"--widths must be positive, got {self.widths}")
        if self.study_name is not None and not self.study_name.strip():
            raise ConfigError("--study-name must not be empty")
        from bnsearch.core.space import model_family

        model_family(self.model)
        resolve_device(self.device)
        _check_precision(self.precision)
        if self.save_models not in SAVE_MODES:
            raise ConfigError(f"unknown --save-models '{self.save_models}'; choose one of: {', '.join(SAVE_MODES)}")
        resolve_pack(self.pack, "cpu")

    @property
    def resolved_study_name(self) -> str:
        return self.study_name or default_study_name(self.dataset, self.strategy, self.model)


def model_label(model: str) -> str:
    """A short name of ``--model`` for a study name: the net's name, or the factory's function name."""
    return model.strip().rpartition(":")[2] if ":" in model else model


def default_study_name(dataset: str, strategy: str, model: str = "bncnn") -> str:
    """``mnist5k-tpe``, ``mnist5k-plain-tpe`` for another model; for a dataset path, its file or
    folder name without suffix."""
    stem = dataset if "/" not in dataset and "\\" not in dataset else Path(dataset).stem
    net = "" if model == "bncnn" else f"-{model_label(model)}"
    return f"{Path(stem).stem or 'data'}{net}-{strategy}"


def resolve_device(device: str) -> str:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N``/``mps`` into an available torch device string.

    Raises:
        ConfigError: unknown device name, or the device is not available here.
    """
    import torch

    name = device.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name == "cpu":
        return "cpu"
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError("--device mps: no Apple GPU (MPS) is available here; use --device cpu or auto")
        return "mps"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA GPU is available here; use --device cpu or auto")
        if name.startswith("cuda:"):
            idx = name.split(":", 1)[1]
            if not idx.isdigit() or int(idx) >= torch.cuda.device_count():
                raise ConfigError(
                    f"--device {device}: no such GPU; this machine has {torch.cuda.device_count()} (cuda:0..)"
                )
        return name
    raise ConfigError(f"unknown device '{device}'; choose one of: {DEVICE_CHOICES}")


# --pack auto: trials per pack on each device type. 1 (no packing) until benchmarks/pack.py
# shows packing faster on that device: on this project's CPU it was 3-6x slower at every K (docs/speed.md).
AUTO_PACK = {"cpu": 1, "cuda": 1, "mps": 1}
MAX_PACK = 256


def resolve_pack(pack: int | str, device: str) -> int:
    """Trials per pack for ``--pack`` (``auto`` or a count) on ``device``.

    Raises:
        ConfigError: neither ``auto`` nor a whole number in 1..MAX_PACK.
    """
    if isinstance(pack, str):
        text = pack.strip().lower()
        if text == "auto":
            return AUTO_PACK.get(device.split(":", 1)[0], 1)
        if not text.isdigit():
            raise ConfigError(f"--pack must be auto or a whole number of trials, got {pack!r}")
        pack = int(text)
    if not 1 <= pack <= MAX_PACK:
        raise ConfigError(f"--pack must be between 1 and {MAX_PACK} trials (or auto), got {pack}")
    return pack


def _check_precision(precision: str) -> None:
    if precision not in PRECISION_CHOICES:
        choices = ", ".join(PRECISION_CHOICES)
        raise ConfigError(f"unknown precision '{precision}'; choose one of: {choices}")


def resolve_precision(
    precision: str, devices: Sequence[str], *, study_precision: str | None = None, follow_study: bool = False
) -> str:
    """The precision trials train in, ``fp32`` or ``bf16``, for ``--precision``.

    ``auto`` keeps a resumed study's precision (``study_precision``); for a new study it is
    bf16 autocast where every training device runs bf16 natively (CPUs with AVX512-BF16 or
    AMX, CUDA GPUs since Ampere) and fp32 elsewhere.

    Args:
        follow_study: A search joining a bf16 study from a machine without native bf16 (mixed
            hardware on a cluster): train in bf16 anyway, emulated, so that the study's trials
            stay comparable. Otherwise such a device falls back to fp32.

    Raises:
        ConfigError: bf16 asked for on a device without native bf16 (it would run slower), or
            a bf16 study followed on a device that cannot run bf16 at all.
    """
    from bnsearch.core.train import bf16_runs, bf16_supported

    _check_precision(precision)
    lacking = [d for d in devices if not bf16_supported(d)]
    if precision == "bf16" and lacking:
        raise ConfigError(
            f"--precision bf16: device {lacking[0]} has no native bf16 support (it would run "
            "slower than fp32); use --precision fp32 or auto"
        )
    if precision != "auto":
        return precision
    if study_precision == "fp32" or (study_precision == "bf16" and not lacking):
        return study_precision
    if study_precision == "bf16" and follow_study:
        unable = [d for d in lacking if not bf16_runs(d)]
        if unable:
            raise ConfigError(
                f"this study trains in bf16 and device {unable[0]} cannot run bf16; run this machine "
                "on a study of its own (--study NAME; it trains in fp32) or pass --device cpu"
            )
        logger.warning(
            "the study trains in bf16; %s has no native bf16, so its trials run bf16 emulated "
            "(slower, but comparable with the study's other trials)",
            ", ".join(lacking),
        )
        return "bf16"
    return "fp32" if lacking else "bf16"
