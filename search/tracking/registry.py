"""The champion in MLflow: its pyfunc logged under the selection run, registered under
the study's name, the `champion` alias moved only for a better model."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

from search.backend import name as backend_name
from search.tracking.environment import PACKAGES, version
from search.tracking.runs import Tracker


def log_champion(
    tracker: Tracker, run_id: str, *, artifacts: dict[str, str], example: Any, output: Any
) -> str:
    """Log preprocessing + network(s) as one pyfunc model on `run_id`; returns its URI."""
    import mlflow

    # the pyfunc's module loads MLflow's pyfunc: only when a champion is logged
    from search.tracking.champion import ChampionModel, champion_signature

    mlflow.set_tracking_uri(tracker.tracking_uri)
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)  # the CloudPickle notice
    logging.getLogger("mlflow.models").setLevel(logging.ERROR)
    # what predicting needs: not Optuna, not the search's own tools
    predicting = [p for p in PACKAGES if p != "optuna"]
    packages = (*predicting, "joblib", *(("jax",) if backend_name() == "jax" else ()))
    requirements = [f"{p}=={version(p)}" for p in packages if version(p) != "absent"]
    package = Path(__file__).resolve().parents[1]  # the search package, for the pyfunc
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ChampionModel(),
            artifacts=artifacts,
            signature=champion_signature(example, output),
            input_example=example,
            pip_requirements=requirements,
            code_paths=[str(package)],
        )
    tracker.client.update_run(run_id, status="RUNNING")
    return str(info.model_uri)


def register_champion(
    tracker: Tracker, model_uri: str, name: str, *, tags: dict[str, str], is_better: Any
) -> tuple[str, bool, str]:
    """Register a new version; move the `champion` alias only if `is_better(current_tags)`."""
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracker.tracking_uri)
    logging.getLogger("mlflow.tracking._model_registry").setLevel(logging.WARNING)
    client = tracker.client
    with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints "Successfully registered"
        version = mlflow.register_model(model_uri, name).version
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    try:
        current = client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        current = None
    if current is None:
        client.set_registered_model_alias(name, "champion", version)
        return str(version), True, f"registered {name} version {version} as @champion"
    verdict, why = is_better(current.tags)
    if verdict:
        client.set_registered_model_alias(name, "champion", version)
        return (
            str(version),
            True,
            (
                f"registered {name} version {version}; it beats version "
                f"{current.version} ({why}) and is now @champion"
            ),
        )
    return (
        str(version),
        False,
        (
            f"registered {name} version {version}; @champion stays on "
            f"version {current.version} ({why})"
        ),
    )
