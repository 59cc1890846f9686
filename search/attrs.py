"""The user attributes a search keeps on its Optuna study and trials: every name, once.

Optuna keeps them beside the trials in the study's storage, so any process that opens the
storage (a worker, `search select`, `search best`, optuna-dashboard) reads what a search
recorded without MLflow. Each module reads and writes them through these names.
"""

from __future__ import annotations


class Study:
    """Attributes of the study (`study.user_attrs`)."""

    RUN_ID = "mlflow_run_id"  # the study's parent run in MLflow
    EXPERIMENT_ID = "experiment_id"  # the MLflow experiment of that run
    METRIC = "metric"  # the objective's metric
    DATA_FINGERPRINT = "data_fingerprint"  # a digest of the rows: a later run checks it
    DROPPED_ROWS = "dropped_rows"  # rows left out for lack of a target
    TEST_SEED = "test_seed"  # the seed of the test split
    TEST_DIGEST = "test_digest"  # a digest of the test rows' positions
    SPACE_FILE = "space_file"  # the space file's path, as given
    SPACE_TEXT = "space_text"  # the space that ran, as text
    SPACE_DIR = "space_dir"  # the folder relative paths in the space start from
    CREATED = "created"  # when the study was made
    SELECTED = "selected"  # the chosen trial and its selection run (`search best`)
    CHAMPION = "champion"  # the registered champion, when one was registered
    SELECTED_ON = "selected_on"  # trials finished when the selection ran
    SELECTED_FOR_BUDGET = "selected_for_budget"  # the budget it ran for
    BUDGET = "budget"  # trials a queued study asks for (`search submit`)
    PRIORITY = "priority"  # a queued study's priority
    QUEUED_AT = "queued_at"  # when it was queued


class Trial:
    """Attributes of a trial (`trial.user_attrs`)."""

    RUN_ID = "mlflow_run_id"  # the trial's run in MLflow
    PARAMS = "params"  # every value the trial trained with (the MLP's widths included)
    SEED = "seed"  # the trial's model seed; fold i uses seed + i
    START = "start"  # where an enqueued trial came from ("center")
    RETRY_OF = "retry_of"  # the trial this one retries (a dead owner's, an interrupted one)
    WORKER = "worker"  # host:pid of the process training it
    HEARTBEAT = "heartbeat"  # the owner's last sign of life (seconds since the epoch)
    INTERRUPTED = "interrupted"  # stopped by Ctrl-C or a pool's stop: retried by the next run
    FAIL_REASON = "fail_reason"  # why it failed, one line
    FOLD_SCORES = "fold_scores"  # the objective on each fold
    CV_SCORES = "cv_scores"  # every measure, the mean over the folds
    SCORE_STD = "score_std"  # the objective's spread over the folds
    BEST_EPOCHS = "best_epochs"  # each fold's restored epoch (the refit trains their median)
    EPOCHS = "epochs"  # each fold's epochs trained
    VAL_LOSS_MIN = "val_loss_min"  # each fold's lowest validation loss
    FIT_S = "fit_s"  # seconds inside training
    BUILD_S = "build_s"  # seconds building models
    HYPERMODEL_NOTE = "hypermodel_note"  # what a KerasTuner hypermodel's values did not fit
    SLOT = "slot"  # the worker pool's slot
    CUDA_VISIBLE_DEVICES = "cuda_visible_devices"  # the slot's GPUs
    WORKER_RSS_MB = "worker_rss_mb"  # the worker's memory after the trial
    PACK_WIDTH = "pack.width"  # a packed trial: its program's width,
    PACK_DEPTH = "pack.depth"  # depth,
    PACK_TRIALS = "pack.trials"  # and the trials packed with it
    ENGINE_REASON = "engine_reason"  # why a trial of a packed search trained sequentially
