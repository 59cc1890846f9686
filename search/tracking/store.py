"""A new SQLite MLflow store, copied from a cached empty one instead of migrated anew.

MLflow gives a new database its tables by running every schema migration it ships (longer
than a small search's first trial on a 2-core machine). The result is the
same for every store of one MLflow version, so it is built once into the user's cache
(`$XDG_CACHE_HOME/keras-search`, else `~/.cache/keras-search`) and copied. The cached copy
has no Default experiment: MLflow adds it when it opens the store, with that store's own
artifact location, exactly as for a store it built itself. Any failure (no writable
cache, a file system without hard links, a schema MLflow changed) leaves the store to
MLflow's own creation.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "sqlite:///"


def seed_store(uri: str) -> bool:
    """Put a cached empty database where a new SQLite store's URI points; True if it did."""
    if not uri.startswith(PREFIX) or "?" in uri or uri == PREFIX + ":memory:":
        return False
    path = Path(uri.removeprefix(PREFIX))
    if path.exists():
        return False
    try:
        template = _template()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        shutil.copyfile(template, partial)
        try:
            os.link(partial, path)  # atomic: another process's new store wins, untouched
        except FileExistsError:
            return False
        finally:
            partial.unlink()
    except Exception as exc:  # MLflow then builds the store itself
        log.debug("no MLflow store template: %s: %s", type(exc).__name__, exc)
        return False
    return True


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "keras-search"


def _template() -> Path:
    versions = "-".join(metadata.version(p) for p in ("mlflow", "sqlalchemy", "alembic"))
    template = cache_dir() / f"mlflow-{versions}.db"
    if template.exists():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    building = template.with_name(f".{template.name}.{os.getpid()}.partial")
    build_empty_store(building)
    os.replace(building, template)  # atomic; concurrent builders write the same thing
    return template


def build_empty_store(path: Path) -> None:
    """Let MLflow create and migrate a store at `path`, then drop its Default experiment."""
    from mlflow.tracking import MlflowClient

    MlflowClient(PREFIX + str(path)).search_experiments()
    with contextlib.closing(sqlite3.connect(path)) as con, con:
        con.execute("DELETE FROM experiments WHERE experiment_id = 0")


@contextlib.contextmanager
def store_lock(tracking_uri: str) -> Iterator[None]:
    """A lock beside a SQLite tracking store, for the processes of one machine."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    with open(tracking_uri.removeprefix("sqlite:///") + ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
