"""Create or resume the Optuna study with the sampler and pruner the space file names."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from search.attrs import Study, Trial
from search.errors import DataError, InputError, SearchFailed, SpaceError
from search.prepare import Prepared
from search.redact import mask_password
from search.space.file import parse_space, ran_text
from search.space.sampling import center
from search.space.schema import Space
from search.storage.journal import SUFFIXES, journal_path, open_journal

DEFAULT_HOME = Path("mlruns")


def open_storage(url: str | None, home: Path) -> BaseStorage:
    """Optuna's journal file under `home` by default; RDB storages by URL."""
    if url is None:
        return JournalStorage(open_journal(home / "optuna.journal"))
    if url.split(":", 1)[0].split("+")[0] in ("sqlite", "postgresql", "mysql"):
        return RDBStorage(url)
    if url.endswith(SUFFIXES):
        return JournalStorage(open_journal(Path(url)))
    raise InputError(
        f"--storage: {mask_password(url)!r} is neither a database URL "
        "(sqlite:///, postgresql://, mysql://) nor a journal file (*.journal)"
    )


def open_study(prep: Prepared, storage: BaseStorage, name: str) -> optuna.Study:
    """Create the study, or resume it after checking it was made from the same data."""
    space = prep.space
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        sampler=prep.sampler,
        pruner=prep.pruner,
        direction=space.direction,
        load_if_exists=True,
    )
    attrs = study.user_attrs
    if not attrs:
        study.set_user_attr(Study.DATA_FINGERPRINT, prep.data.fingerprint)
        study.set_user_attr(Study.DROPPED_ROWS, prep.data.dropped_rows)  # without a target
        study.set_user_attr(Study.TEST_SEED, prep.split.seed)
        study.set_user_attr(Study.TEST_DIGEST, prep.split.digest())
        study.set_user_attr(Study.METRIC, space.objective.metric)
        study.set_user_attr(Study.SPACE_FILE, space.path)
        study.set_user_attr(Study.SPACE_TEXT, ran_text(space))
        study.set_user_attr(Study.SPACE_DIR, str(space.base_dir))
        study.set_user_attr(Study.CREATED, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        # a hypermodel's parameters are known only once it is built: no center for it
        middle = {} if space.model.hypermodel else center(space.params)
        if middle and space.study.start == "center" and space.study.sampler != "grid":
            study.enqueue_trial(middle, user_attrs={Trial.START: "center"})
        return study
    if study.direction.name.lower() != space.direction:
        raise SpaceError(
            f"study {name!r} was created to {study.direction.name.lower()}; "
            f"this space asks to {space.direction}",
            file=space.path,
            key="objective.direction",
        )
    check_same_data(study, prep)
    if attrs.get(Study.SPACE_TEXT) != ran_text(space):  # selection follows the space that ran last
        study.set_user_attr(Study.SPACE_TEXT, ran_text(space))
    return study


def check_same_data(study: optuna.Study, prep: Prepared) -> None:
    """Refuse to go on when the data or the test split differ from the study's."""
    attrs, name, space = study.user_attrs, study.study_name, prep.space
    if attrs.get(Study.DATA_FINGERPRINT) != prep.data.fingerprint:
        raise DataError(
            f"the data changed since study {name!r} was "
            f"created (fingerprint {attrs.get('data_fingerprint')} -> "
            f"{prep.data.fingerprint}); use a new --study name",
            file=space.path,
            key="data.source",
        )
    if attrs.get(Study.TEST_DIGEST) != prep.split.digest():
        raise DataError(
            f"the test split differs from the one "
            f"study {name!r} was created with; use a new --study name",
            file=space.path,
            key="data.test_size",
        )


def absent_store(storage: str | None, home: Path) -> Path | None:
    """The file of a journal or SQLite storage that does not exist yet (opening it would
    make an empty one: a command that only reads must not); None when it exists or the
    storage is a database server."""
    path = journal_path(storage, home)
    if path is None and storage is not None and storage.startswith("sqlite:///"):
        name = storage.removeprefix("sqlite:///").split("?")[0]
        path = Path(name) if name and name != ":memory:" else None
    return path if path is not None and not path.exists() else None


def load_study(name: str, storage: str | None, home: Path) -> optuna.Study:
    """The study `name`; InputError, with nothing written, when it is not there."""
    missing = absent_store(storage, home)
    if missing is not None:
        raise InputError(f"study {name!r} not found: there is no storage at {missing}")
    store = open_storage(storage, home)
    names = [s.study_name for s in store.get_all_studies()]
    if name not in names:
        raise InputError(
            f"study {name!r} not found in the storage (studies: {', '.join(names) or 'none'})"
        )
    return optuna.load_study(study_name=name, storage=store)


def study_space(study: optuna.Study) -> Space:
    """The space file a study was created with, as it recorded it."""
    text = study.user_attrs.get(Study.SPACE_TEXT)
    if not text:
        raise InputError(
            f"study {study.study_name!r} was not made by this service "
            "(it has no space file recorded)"
        )
    return parse_space(
        text,
        file=study.user_attrs.get(Study.SPACE_FILE) or "<space>",
        origin=study.user_attrs.get(Study.SPACE_DIR),
    )


def best_first(study: optuna.Study) -> list[FrozenTrial]:
    """The complete trials, best first in the study's direction."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    maximize = study.direction.name == "MAXIMIZE"
    return sorted(done, key=lambda t: float(t.value or 0.0), reverse=maximize)


def counts(study: optuna.Study) -> dict[str, int]:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {
        s.name.lower(): states.count(s)
        for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    }


def failure_reasons(trials: list[FrozenTrial]) -> list[str]:
    reasons = {
        t.user_attrs.get(Trial.FAIL_REASON, "unknown") for t in trials if t.state == TrialState.FAIL
    }
    return sorted(reasons)


@dataclass
class Budget:
    """A trial/time budget for one `run` call; `total`, the study's own budget in all."""

    trials: int | None
    timeout: float | None
    callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = field(default_factory=list)
    total: int | None = None

    def room(self, study: optuna.Study) -> int | None:
        """Trials that may still start, counting those other processes run now."""
        if self.total is None:
            return None
        c = counts(study)
        return max(0, self.total - c["complete"] - c["pruned"] - c["running"])

    def stop_when_full(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """A study callback: another process running the same study shares its budget."""
        if self.room(study) == 0:
            # inside study.optimize; the pack loop, which is not, checks `room` itself
            with contextlib.suppress(RuntimeError):
                study.stop()


def optimize(
    study: optuna.Study, objective: Callable[[optuna.Trial], float], budget: Budget
) -> list[FrozenTrial]:
    """Run trials; a failing trial is recorded as failed and the study goes on."""
    waiting = TrialState.WAITING  # an enqueued trial (the center) is run by this call
    before = {t.number for t in study.get_trials(deepcopy=False) if t.state != waiting}
    study.optimize(
        objective,
        n_trials=budget.trials,
        timeout=budget.timeout,
        catch=(Exception,),
        callbacks=budget.callbacks,
        gc_after_trial=False,
    )
    new = [t for t in study.get_trials() if t.number not in before]
    if new and all(t.state == TrialState.FAIL for t in new):
        reasons = "; ".join(failure_reasons(new))
        raise SearchFailed(f"all {len(new)} trials failed: {reasons}")
    return new
