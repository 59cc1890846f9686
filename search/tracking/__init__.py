"""The only door to MLflow: what a study and its trials record (`parent`'s `StudyRecorder`,
`recorder`'s `TrialRecorder` and `FoldRecorder`, which hand out MLflow's run ids only), the
two writers beneath them (`runs`' `Tracker` in-process, for pool workers and selection;
`process`' `TrackingProcess`, the process that writes while `search run` trains, whose
placeholder run ids stay in this package), the SQLite store (`store`), reading runs back
(`records`) and the champion's pyfunc (`champion`). Nothing outside this package imports
MLflow; the training process imports none of it (every MLflow import here is inside a
function, or in `champion`, which only selection and serving load)."""

from search.tracking.environment import environment_tags
from search.tracking.registry import log_champion, register_champion
from search.tracking.runs import RunWriter, Tracker, default_tracking_uri
from search.tracking.tags import ROLE, STUDY

__all__ = [
    "ROLE",
    "STUDY",
    "RunWriter",
    "Tracker",
    "default_tracking_uri",
    "environment_tags",
    "log_champion",
    "register_champion",
]
