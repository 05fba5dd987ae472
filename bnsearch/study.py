"""Studies: create or resume one, and refuse to mix trials of runs with different settings.

A study's identity (dataset, space, seed, ...) is written when it is created; a resumed run
is checked against it. Creation and identity are one step as far as any other process can
see: both happen under the storage's creation lock, so processes that start together on a
fresh storage all find one study with its identity, and a process with other settings gets
one clear refusal.
"""

from __future__ import annotations

import logging
import platform
import time
from importlib import metadata
from typing import Any

import optuna

from bnsearch import keys
from bnsearch.errors import StudyError
from bnsearch.storages import creation_lock

logger = logging.getLogger(__name__)

IDENTITY_WAIT_S = 10.0  # a study found without its identity may be being created: wait this long


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a result depends on (stored with studies and models)."""
    out = {"python": platform.python_version()}
    for pkg in ("bnsearch", "optuna", "torch", "numpy", "scikit-learn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return sorted(s.study_name for s in storage.get_all_studies())


def load_existing(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """Load a study that must exist; raise ``StudyError`` listing the existing ones otherwise."""
    names = study_names(storage)
    if name not in names:
        listing = ", ".join(names) if names else "none"
        raise StudyError(f"no study named '{name}' in this storage; existing studies: {listing}")
    return optuna.load_study(study_name=name, storage=storage)


# Identity keys added after studies existed, and the value a study without the key implies:
# every study made before --model trained the BN-CNN.
IDENTITY_DEFAULTS: dict[str, Any] = {"model": "bncnn"}


def identity_value(identity: dict[str, Any], key: str) -> Any:
    """``identity[key]``, or what a study made before ``key`` existed implies (``IDENTITY_DEFAULTS``)."""
    return identity.get(key, IDENTITY_DEFAULTS.get(key))


def identity_mismatches(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Keys whose values differ between a study's stored identity and this run's."""
    return sorted(k for k in set(stored) | set(wanted) if identity_value(stored, k) != identity_value(wanted, k))


def _model_text(identity: dict[str, Any]) -> str:
    source = identity.get("model_source")
    return f"'{identity_value(identity, 'model')}'" + (f" (source {source})" if source else "")


# Space params that a ``bnsearch run`` option fixes, for the hint in a mismatch message.
_SPACE_OPTIONS = {"batch_size": "--batch-size", "epochs": "--epochs"}


def describe_mismatch(key: str, stored: Any, wanted: Any) -> str:
    """One clause of a resume refusal; for the space, only the params that differ."""
    if key != "space" or not isinstance(stored, dict) or not isinstance(wanted, dict):
        return f"{key}: study has {stored!r}, this run has {wanted!r}"
    parts = []
    for name in sorted(set(stored) | set(wanted)):
        old, new = stored.get(name), wanted.get(name)
        if old == new:
            continue
        clause = f"space.{name}: study has {old!r}, this run has {new!r}"
        if name in _SPACE_OPTIONS and isinstance(old, dict) and "value" in old:
            clause += f" (pass {_SPACE_OPTIONS[name]} {old['value']})"
        parts.append(clause)
    return "; ".join(parts)


def check_identity(study: optuna.Study, identity: dict[str, Any], *, rerun: str, option: str) -> None:
    """Refuse to add trials to ``study`` unless bnsearch created it with this ``identity``.

    Args:
        identity: What makes trials comparable (dataset, space, split seed, widths ...).
        rerun: The command to repeat with the original settings, for the message ("rerun").
        option: The option that names another study instead, for the message ("--study-name").

    Raises:
        StudyError: the study has no stored identity, minimizes, or was created with another
            identity (the message names each difference).
    """
    name = study.study_name
    stored = study.user_attrs.get(keys.STUDY_CONFIG)
    if stored is None and not study.get_trials(deepcopy=False):
        stored = _wait_for_identity(study)
    if stored is None:
        raise StudyError(f"study '{name}' was not created by bnsearch; choose another {option}")
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise StudyError(
            f"study '{name}' minimizes; bnsearch studies maximize validation accuracy; choose another {option}"
        )
    diff = identity_mismatches(stored, identity)
    if "model" in diff or "model_source" in diff:
        edited = "model" not in diff
        raise StudyError(
            f"study '{name}' trains model {_model_text(stored)}, this run asks for {_model_text(identity)}"
            + ("; the factory's source file changed since" if edited else "")
            + f"; {rerun} with --model {identity_value(stored, 'model')}"
            + (" as it was" if edited else "")
            + f" or choose a new {option}"
        )
    if diff:
        details = "; ".join(describe_mismatch(k, stored.get(k), identity.get(k)) for k in diff)
        raise StudyError(
            f"study '{name}' was created with different settings ({details}); "
            f"{rerun} with the original settings or choose a new {option}"
        )


def _wait_for_identity(study: optuna.Study) -> dict[str, Any] | None:
    """The identity of a study found empty and without one, once its creator has written it.

    bnsearch writes a study and its identity under one lock, so this waits only for a
    creator outside that lock (a process of an older bnsearch); None after ``IDENTITY_WAIT_S``.
    """
    deadline = time.monotonic() + IDENTITY_WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.2)
        stored = study.user_attrs.get(keys.STUDY_CONFIG)
        if stored is not None:
            return dict(stored)
    return None


def create_or_resume(
    storage: optuna.storages.BaseStorage,
    name: str,
    *,
    url: str,
    identity: dict[str, Any],
    attrs: dict[str, Any],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> tuple[optuna.Study, bool]:
    """Create study ``name`` or resume it, refusing to mix runs of different identity.

    Args:
        url: The storage's URL (which lock to take).
        identity: What makes trials comparable (dataset, space, split seed, widths ...). A
            resumed study must have been created with the same identity.
        attrs: Extra study attributes written at creation (versions, strategy, ...).

    Returns:
        The study and whether it already existed.

    Raises:
        StudyError: the study exists with another identity or direction.
    """
    with creation_lock(url, storage, name):
        if name in study_names(storage):
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
            check_identity(study, identity, rerun="rerun", option="--study-name")
            return study, True
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            direction="maximize",
            load_if_exists=True,  # a process of an older bnsearch, outside the lock, may have made it
        )
        if keys.STUDY_CONFIG in study.user_attrs:
            check_identity(study, identity, rerun="rerun", option="--study-name")
            return study, True
        study.set_user_attr(keys.STUDY_CONFIG, identity)
        for k in sorted(attrs):
            study.set_user_attr(k, attrs[k])
    return study, False
