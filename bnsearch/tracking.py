"""MLflow tracking of trials (``run --mlflow-uri`` / ``compare --mlflow-uri``).

``MlflowLogger`` is an Optuna study callback: when a trial finishes in this process it
becomes one MLflow run in the experiment named after the study, with the trial's params
(every resolved setting), its per-epoch ``val_acc`` / ``train_loss`` / ``train_acc`` as step
metrics, its state and prune or fail reason as tags, and its saved model (``--save-models``)
as artifacts under ``model/``.

Nothing is logged twice: each trial is logged by the one process that ran it, and a run is
only created when the experiment has none tagged with that trial's number (so a resumed
study adds runs for its new trials only; Optuna's retry of a failed trial is a new trial
with a new number, so it is a new run, and the failed one keeps its FAILED run).

The MLflow client is the ``mlflow`` package (``pip install -e ".[tracking]"``). A trial whose
logging fails (the server went away) is reported as a warning; the search goes on.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnsearch import keys
from bnsearch.errors import ConfigError, MissingDependencyError
from bnsearch.urls import mask_url

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

TRIAL_TAG = "bnsearch.trial_number"  # MLflow run tag: the Optuna trial number it records
STATE_TAG = "optuna.state"  # COMPLETE, PRUNED or FAIL
REACH_TIMEOUT_S = 10  # the server must answer the start-up check within this long
_CURVES = {"val_acc": keys.VAL_ACC_CURVE, "train_loss": keys.TRAIN_LOSS_CURVE, "train_acc": keys.TRAIN_ACC_CURVE}
_REASONS = {"prune_reason": keys.PRUNE_REASON, "fail_reason": keys.FAIL_REASON}


def _mlflow_client(uri: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MissingDependencyError("mlflow", "--mlflow-uri") from None
    return MlflowClient(tracking_uri=uri)


def check_tracking(uri: str) -> None:
    """Fail now, before any trial runs, when mlflow is missing or the server does not answer.

    Raises:
        MissingDependencyError: the mlflow package is not installed.
        ConfigError: an http(s) tracking server is unreachable.
    """
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--mlflow-uri needs the package 'mlflow'; install the extra with: pip install -e \".[tracking]\" "
            "(or pip install mlflow)"
        ) from None
    if urllib.parse.urlsplit(uri).scheme not in ("http", "https"):
        return  # a local store (file path, sqlite:///...): nothing to reach
    probe = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        with urllib.request.urlopen(_without_userinfo(probe), timeout=REACH_TIMEOUT_S):
            pass
    except urllib.error.HTTPError:
        return  # it answered (maybe 401 or 403: the client sends the credentials of the URI)
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise ConfigError(f"cannot reach the MLflow server at {mask_url(uri)}: {reason}") from None


def _without_userinfo(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True, slots=True, kw_only=True)
class MlflowLogger:
    """Optuna callback logging each trial finished in this process as one MLflow run."""

    uri: str  # MLflow tracking URI
    storage: str  # the study's storage URL (stored as a tag with its password masked)
    artifacts: Path | None = None  # the artifact store of saved models, if the run keeps them

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        try:
            self.log_trial(study.study_name, trial)
        except Exception as e:  # a tracking failure must not end the search
            logger.warning("trial %d not logged to MLflow at %s: %s", trial.number, mask_url(self.uri), e)

    def log_trial(self, study_name: str, trial: optuna.trial.FrozenTrial) -> str | None:
        """Log ``trial``; return the new MLflow run id, or None when it was logged before."""
        from mlflow.entities import Metric, Param, RunTag

        client = _mlflow_client(self.uri)
        experiment_id = self._experiment(client, study_name)
        found = client.search_runs(
            [experiment_id], filter_string=f"tags.`{TRIAL_TAG}` = '{trial.number}'", max_results=1
        )
        if found:
            return None
        start = _ms(trial.datetime_start)
        end = _ms(trial.datetime_complete) or start
        tags = {
            TRIAL_TAG: str(trial.number),
            STATE_TAG: trial.state.name,
            "bnsearch.study": study_name,
            "bnsearch.storage": mask_url(self.storage),
        }
        for name, key in (*_REASONS.items(), ("worker", keys.WORKER), ("device", keys.DEVICE)):
            if trial.user_attrs.get(key) is not None:
                tags[f"bnsearch.{name}"] = str(trial.user_attrs[key])[:5000]
        run = client.create_run(experiment_id, start_time=start, tags=tags, run_name=f"trial-{trial.number}")
        run_id = run.info.run_id
        params = trial.user_attrs.get(keys.RESOLVED_PARAMS) or trial.params
        metrics = [
            Metric(name, float(v), end or 0, step)
            for name, key in _CURVES.items()
            for step, v in enumerate(trial.user_attrs.get(key) or [], start=1)
        ]
        if trial.value is not None:
            metrics.append(Metric("value", float(trial.value), end or 0, 0))
        seed = trial.user_attrs.get(keys.TRIAL_SEED)
        client.log_batch(
            run_id,
            metrics=metrics,
            params=[Param(k, str(params[k])) for k in sorted(params)],
            tags=[RunTag("bnsearch.seed", str(seed))] if seed is not None else [],
        )
        self._log_model(client, run_id, trial)
        status = "FAILED" if trial.state.name == "FAIL" else "FINISHED"
        # MLflow writes "View run ... at <tracking URI>" to stdout here, password and all,
        # into the middle of the progress display; the run is in the experiment anyway.
        with contextlib.redirect_stdout(io.StringIO()):
            client.set_terminated(run_id, status=status, end_time=end)
        return str(run_id)

    def _experiment(self, client: Any, name: str) -> str:
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        try:
            return str(client.create_experiment(name))
        except Exception:  # another process created it in between
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            return str(exp.experiment_id)

    def _log_model(self, client: Any, run_id: str, trial: optuna.trial.FrozenTrial) -> None:
        from bnsearch.model_folder import download_model, saved_model_ids

        ids = saved_model_ids(trial)
        if ids is None or self.artifacts is None:
            return
        with tempfile.TemporaryDirectory(prefix="bnsearch-mlflow-") as tmp:
            folder = download_model(ids, self.artifacts, Path(tmp), number=trial.number)
            for name in sorted(ids):
                client.log_artifact(run_id, str(folder / name), artifact_path="model")


def _ms(when: Any) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)
