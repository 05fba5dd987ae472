"""Names of the attributes bnsearch writes on trials and studies.

``search/objective.py`` and ``study.py`` write them; ``report/``, ``analysis.py`` and the CLI read
them. Keeping the names in one module stops writers and readers from drifting apart.
"""

from __future__ import annotations

# Trial user attributes.
VAL_ACC_CURVE = "val_acc_curve"  # list[float], validation accuracy (0..1) after each epoch
TRAIN_LOSS_CURVE = "train_loss_curve"  # list[float], mean training loss of each epoch
TRAIN_ACC_CURVE = "train_acc_curve"  # list[float], training accuracy (0..1) seen during each epoch
EPOCH_TIME_CURVE = "epoch_time_s_curve"  # list[float], wall seconds of each epoch
WALL_TIME_S = "wall_time_s"  # float, seconds spent in training (model build included; packed: its share)
DEVICE = "device"  # str, e.g. "cpu" or "cuda:0"
TRIAL_SEED = "seed"  # int, seed for the trial's init and shuffling
EPOCHS_RUN = "epochs_run"  # int
PRUNE_REASON = "prune_reason"  # str, why the trial was pruned (pruner, divergence, interrupt)
FAIL_REASON = "fail_reason"  # str, "ExceptionType: message" of a failed trial
WORKER = "worker"  # str, host:pid of the process that ran the trial
RESOLVED_PARAMS = "resolved_params"  # dict, every setting the trial trained with (fixed ones too)
SAVED_MODEL = "saved_model"  # dict, artifact id of model.pt and config.json (set once both are stored)
PACK_TRIALS = "pack_trials"  # list[int], --pack: numbers of the trials trained together as one model
SIMULATED_TIME_S = "simulated_time_s"  # float, compare --benchmark: training seconds a stand-in trial represents

# Study user attributes.
STUDY_CONFIG = "bnsearch_config"  # dict: dataset, space, train settings, seed (the run identity)
STUDY_VERSIONS = "bnsearch_versions"  # dict: library versions at creation
STUDY_STRATEGY = "bnsearch_strategy"  # str, strategy the study was created with
STUDY_PRUNER = "bnsearch_pruner"  # str
STUDY_DATASET = "bnsearch_dataset"  # str, dataset name or path

# bnsearch best --confirm: study user attributes (the search's trials are left as they are).
CONFIRM_CELL_PREFIX = "bnsearch_confirm_cell:"  # + "<config key>:<seed index>" → dict: one (config, seed) cell
CONFIRM_RESULT = "bnsearch_confirm"  # dict: the latest confirm's leader, configurations, seeds, intervals, test score
