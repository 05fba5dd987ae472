"""Trained models of trials, kept in Optuna's artifact store and linked to their trials.

``run --save-models`` stores, for each kept trial, the pair ``best --retrain`` writes
(``model.pt`` and ``config.json``, written by ``_format``) as two artifacts uploaded with
``optuna.artifacts.upload_artifact``, so optuna-dashboard lists them under the trial. The store is a folder
(``FileSystemArtifactStore``): ``artifacts/`` beside a SQLite study database, else
``studies/artifacts``; ``--artifacts DIR`` or ``$BNSEARCH_ARTIFACTS`` choose another (on
many machines, a folder they all mount).

What a reader may load is decided by the trial attribute ``saved_model`` (``keys.SAVED_MODEL``:
the artifact id of each file), written only after both files are in the store. Each file is
written under a temporary name and renamed into place, so a worker killed mid-upload leaves at
most an unlinked ``.part`` file and a trial without ``saved_model``: nothing half-written is
ever loaded.

Modes: ``all`` keeps the model of every complete trial; ``best`` keeps a trial's model only
when its validation accuracy beats every complete trial's at the moment it finishes, so the
kept models are the study's best and the ones that were best until beaten; ``none`` keeps
nothing. Nothing is deleted: a file is only ever linked by the trial that wrote it and by
Optuna's retry of that trial, and both links stay valid.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from optuna.artifacts import FileSystemArtifactStore

from bnsearch import keys
from bnsearch.config import SAVE_MODE_ALL, SAVE_MODE_BEST
from bnsearch.errors import ConfigError, ModelError
from bnsearch.model_folder._format import CONFIG_FILE, WEIGHTS_FILE, write_model_files

if TYPE_CHECKING:
    import optuna
    from torch import nn

ENV_ARTIFACTS = "BNSEARCH_ARTIFACTS"  # folder of the artifact store when --artifacts is not given
DEFAULT_ARTIFACTS = Path("studies/artifacts")  # for storages that are not a SQLite file


def artifacts_dir(storage: str, override: str | None = None) -> Path:
    """The artifact-store folder for ``storage``: ``override``, ``$BNSEARCH_ARTIFACTS``, the
    ``artifacts/`` folder beside a SQLite database, or ``studies/artifacts``."""
    from bnsearch.storages import sqlite_path

    chosen = override or os.environ.get(ENV_ARTIFACTS, "").strip()
    if chosen:
        return Path(chosen)
    db = sqlite_path(storage)
    return db.parent / "artifacts" if db is not None else DEFAULT_ARTIFACTS


def check_store_folder(folder: Path) -> None:
    """Raises ``ConfigError`` when ``folder`` exists but is not a folder."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"artifact store {folder} is a file, not a folder; pass --artifacts DIR")


def open_store(folder: Path, *, create: bool) -> AtomicFileSystemArtifactStore:
    """The artifact store in ``folder``.

    Raises:
        ConfigError: ``folder`` is a file, cannot be created, or (``create=False``) is missing.
    """
    check_store_folder(folder)
    if not create and not folder.is_dir():
        raise ConfigError(
            f"no artifact store at {folder}: the study saved no models there (run with --save-models, "
            "or pass --artifacts DIR)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the artifact store {folder}: {e.strerror or e}") from None
    return AtomicFileSystemArtifactStore(folder)


class AtomicFileSystemArtifactStore(FileSystemArtifactStore):
    """Optuna's ``FileSystemArtifactStore`` whose writes appear all at once.

    The content goes to ``<id>.part`` first and is renamed to ``<id>`` (an atomic rename on
    one file system), so a reader, or optuna-dashboard, never sees a truncated file.
    """

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        final = self._get_filepath(artifact_id)
        tmp = final.with_name(final.name + ".part")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            for chunk in iter(lambda: content_body.read(1 << 20), b""):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSaver:
    """Stores a finished trial's model in the artifact store when the mode says so.

    ``model_info`` is the ``config.json`` content shared by every trial of the run (shape,
    normalisation, classes, dataset); each trial adds its own params.
    """

    mode: str  # best, all or none
    folder: Path  # the artifact store's folder
    model_info: dict[str, Any]  # model_config(...) without params (see _format)

    def wants(self, trial: optuna.Trial, val_acc: float) -> bool:
        """Whether this trial's model is kept: always (all), never (none), or (best) when
        ``val_acc`` beats every complete trial of the study right now."""
        if self.mode == SAVE_MODE_ALL:
            return True
        if self.mode != SAVE_MODE_BEST:
            return False
        from optuna.trial import TrialState

        done = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return all(t.value is not None and val_acc > t.value for t in done)

    def save(self, trial: optuna.Trial, model: nn.Module, params: dict[str, Any]) -> dict[str, str]:
        """Upload ``model.pt`` then ``config.json``; return their artifact ids (filename → id).

        The caller records the ids on the trial (``keys.SAVED_MODEL``) only after this returns.
        """
        from optuna.artifacts import upload_artifact

        store = open_store(self.folder, create=True)
        config = {**self.model_info, "params": params, "study": trial.study.study_name, "trial": trial.number}
        ids: dict[str, str] = {}
        with tempfile.TemporaryDirectory(prefix="bnsearch-model-") as tmp:
            write_model_files(Path(tmp), model, config)
            for name in (WEIGHTS_FILE, CONFIG_FILE):
                ids[name] = upload_artifact(artifact_store=store, file_path=str(Path(tmp) / name), study_or_trial=trial)
        return ids


def saved_model_ids(trial: optuna.trial.FrozenTrial) -> dict[str, str] | None:
    """Artifact ids (filename → id) of the model this trial saved, or None."""
    ids = trial.user_attrs.get(keys.SAVED_MODEL)
    if isinstance(ids, dict) and all(isinstance(ids.get(n), str) for n in (WEIGHTS_FILE, CONFIG_FILE)):
        return {n: ids[n] for n in (WEIGHTS_FILE, CONFIG_FILE)}
    return None


def download_model(ids: dict[str, str], folder: Path, out_dir: Path, *, number: int) -> Path:
    """Download a saved ``model.pt`` and ``config.json`` (``saved_model_ids``) into ``out_dir``.

    Raises:
        ModelError: a file is missing from the store in ``folder``.
    """
    from optuna.artifacts import download_artifact

    store = open_store(folder, create=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, artifact_id in ids.items():
        target = out_dir / name
        target.unlink(missing_ok=True)  # download_artifact refuses to overwrite
        try:
            download_artifact(artifact_store=store, artifact_id=artifact_id, file_path=str(target))
        except Exception as e:  # the store raises ArtifactNotFound, OSError, ...: all "cannot read"
            raise ModelError(
                f"the saved {name} of trial #{number} (artifact {artifact_id}) is not in {folder}: "
                f"{type(e).__name__}; pass the study's --artifacts DIR"
            ) from None
    return out_dir
