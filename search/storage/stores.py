"""Reach the Optuna storage and the MLflow tracking store before anything is written.

A store that cannot be reached is bad configuration: one line naming the (masked) URL and
the cause, exit code 2, and neither store touched, rather than a study created in one
store and a traceback from the other.
"""

from __future__ import annotations

import os
from pathlib import Path

from search.errors import InputError
from search.redact import mask_password

DATABASES = ("sqlite", "postgresql", "mysql", "mssql", "oracle")
TIMEOUT_S = 10.0
DRIVERS = {"MySQLdb": "pip install mysqlclient", "pymysql": "pip install pymysql"}


class StoreUnreachable(InputError):
    """A storage or tracking URL names a store that does not answer."""


def check_stores(storage: str | None, tracking_uri: str | None) -> None:
    """Raise StoreUnreachable for the first given store that cannot be reached."""
    if storage is not None:
        _check(storage, "--storage")
    if tracking_uri is not None:
        _check(tracking_uri, "--tracking-uri")


def _check(url: str, flag: str) -> None:
    scheme = url.split(":", 1)[0].split("+")[0].lower() if "://" in url else ""
    try:
        if scheme == "sqlite":
            _check_sqlite(url)
        elif scheme in DATABASES:
            _check_database(url)
        elif scheme in ("http", "https"):
            _check_http(url)
        elif scheme in ("", "file"):
            _check_folder(Path(url.removeprefix("file://")))
    except StoreUnreachable as exc:
        raise StoreUnreachable(f"{flag} {mask_password(url)}: {exc}") from None


def _check_sqlite(url: str) -> None:
    path = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
    if path and path != ":memory:":
        _check_folder(Path(path))


def _check_folder(path: Path) -> None:
    """A file store or journal file: its folder must exist (or be creatable) and be writable."""
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the nearest folder that exists; what is missing is made
    if not os.access(folder, os.W_OK):
        raise StoreUnreachable(f"the folder {folder} is not writable")
    if path.exists() and not path.is_dir() and not os.access(path, os.W_OK):
        raise StoreUnreachable(f"the file {path} is not writable")


def _check_database(url: str) -> None:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url, connect_args=_timeout(url))
    except ValueError:  # its text would quote a piece of the password
        raise StoreUnreachable(
            "not a valid database URL (a password holding `@`, `:` or `/` must be "
            "percent-encoded: %40, %3A, %2F)"
        ) from None
    except ImportError as exc:
        command = DRIVERS.get(exc.name or "", f"pip install {exc.name}")
        if url.startswith("postgresql"):
            command = "pip install '.[postgres]'  (and write postgresql+psycopg://)"
        raise StoreUnreachable(
            f"its database driver `{exc.name}` is not installed; run: {command}"
        ) from None
    except sqlalchemy.exc.ArgumentError as exc:
        raise StoreUnreachable(f"cannot open ({_first_line(exc)})") from None
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise StoreUnreachable(f"cannot connect ({_first_line(cause)})") from None
    finally:
        engine.dispose()


def _timeout(url: str) -> dict[str, object]:
    scheme = url.split(":", 1)[0]
    if scheme.startswith("postgresql"):
        return {"connect_timeout": int(TIMEOUT_S)}
    if scheme.startswith("mysql"):
        return {"connect_timeout": int(TIMEOUT_S)}
    return {}


def _check_http(url: str) -> None:
    import urllib.error
    import urllib.request

    head, _, rest = url.partition("://")
    rest = rest.rpartition("@")[2] if "@" in rest.split("/", 1)[0] else rest  # no userinfo
    try:
        urllib.request.urlopen(f"{head}://{rest.rstrip('/')}/health", timeout=TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # it answers; what it answers is MLflow's business
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StoreUnreachable(f"cannot connect ({reason})") from None


def _first_line(exc: object) -> str:
    text = mask_password(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__
