"""The only door to MLflow: runs and their writers (`runs`), the SQLite store (`store`), the
process that writes while training goes on (`process`), reading runs back (`records`) and
the champion's pyfunc (`champion`). Nothing outside this package imports MLflow; the
training process imports none of it (every MLflow import here is inside a function, or in
`champion`, which only selection and serving load)."""

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
