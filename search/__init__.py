"""Hyperparameter search and model selection for Keras models.

    from search import load_space, run_search
    result = run_search(load_space("spaces/default.yaml"), n_trials=5)
    print(result)

Public names are imported lazily so that `search --help` and input errors stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "DataError",
    "InputError",
    "Queue",
    "SearchError",
    "SearchFailed",
    "SearchResult",
    "Space",
    "SpaceError",
    "TrialFailed",
    "load_space",
    "reproduce",
    "run_search",
    "select",
    "study_report",
    "submit",
]

_WHERE = {
    "DataError": "search.errors",
    "InputError": "search.errors",
    "SearchError": "search.errors",
    "SearchFailed": "search.errors",
    "SpaceError": "search.errors",
    "TrialFailed": "search.errors",
    "Space": "search.space.schema",
    "load_space": "search.space.file",
    "SearchResult": "search.summary",
    "run_search": "search.runner",
    "select": "search.selection.selector",
    "reproduce": "search.reproduction",
    "study_report": "search.report",
    "submit": "search.pool.queue",
    "Queue": "search.pool.queue",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
