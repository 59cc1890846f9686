"""What a run records of the machine it ran on: package versions, Python, the Keras
backend and the git commit."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata

from search.backend import name as backend_name

PACKAGES = ("tensorflow", "keras", "optuna", "mlflow", "scikit-learn", "pandas", "numpy")


def environment_tags() -> dict[str, str]:
    """Package versions, Python and the git commit, for reproducing a run later."""
    tags = {f"search.version.{p}": version(p) for p in PACKAGES}
    tags["search.version.python"] = platform.python_version()
    tags["search.keras_backend"] = backend_name()
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
