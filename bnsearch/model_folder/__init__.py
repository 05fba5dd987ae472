"""The trained-model folder: its format, saving into the artifact store, retraining, predicting.

``_format`` owns the folder (``model.pt`` + ``config.json``, the one writer and the reader);
``_store`` keeps trials' models in Optuna's artifact store during a search; ``_retrain``
finds a study's best trial and tests its saved model or retrains it (``bnsearch best``);
``_predict`` loads a folder and labels images (``bnsearch predict``, notebooks)::

    import bnsearch.model_folder as mf
    labels = mf.predict("models/mnist5k-tpe", images)
"""

from __future__ import annotations

from bnsearch.model_folder._format import (
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_FORMAT,
    WEIGHTS_FILE,
    class_labels,
    model_config,
    read_model_config,
    write_model_files,
)
from bnsearch.model_folder._predict import (
    LoadedModel,
    as_model_input,
    load_model,
    predict,
    read_images,
    write_predictions_csv,
)
from bnsearch.model_folder._retrain import (
    STUDY_MODEL_PREFIX,
    BestTrial,
    RetrainResult,
    SavedModelResult,
    evaluate_saved_model,
    find_best,
    retrain_best,
    saved_model_folder,
    study_model,
)
from bnsearch.model_folder._store import (
    ENV_ARTIFACTS,
    AtomicFileSystemArtifactStore,
    ModelSaver,
    artifacts_dir,
    check_store_folder,
    download_model,
    open_store,
    saved_model_ids,
)

__all__ = [
    "CONFIG_FILE",
    "ENV_ARTIFACTS",
    "METRICS_FILE",
    "MODEL_FORMAT",
    "STUDY_MODEL_PREFIX",
    "WEIGHTS_FILE",
    "AtomicFileSystemArtifactStore",
    "BestTrial",
    "LoadedModel",
    "ModelSaver",
    "RetrainResult",
    "SavedModelResult",
    "artifacts_dir",
    "as_model_input",
    "check_store_folder",
    "class_labels",
    "download_model",
    "evaluate_saved_model",
    "find_best",
    "load_model",
    "model_config",
    "open_store",
    "predict",
    "read_images",
    "read_model_config",
    "retrain_best",
    "saved_model_folder",
    "saved_model_ids",
    "study_model",
    "write_model_files",
    "write_predictions_csv",
]
