"""Bring a KerasTuner hypermodel: its `hp.Int/Float/Choice/Boolean` calls are driven by Optuna.

A space file names it with `model: {hypermodel: path/to/file.py:build_model}`: a function
`build_model(hp)` or a `keras_tuner.HyperModel` (class or instance). The user keeps the code
and gets Optuna's samplers and pruners, k-fold, MLflow, selection and the worker pool.
"""

from __future__ import annotations

import contextlib
import importlib.util
import traceback
import warnings
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import keras_tuner as kt
import numpy as np
import optuna

from search.attrs import Trial
from search.errors import SpaceError
from search.params import TrialParams

if TYPE_CHECKING:
    from search.space.schema import Space


class OptunaHyperParameters(kt.HyperParameters):  # type: ignore[misc]
    """KerasTuner's container whose values come from an Optuna trial (or are fixed)."""

    def __init__(
        self, trial: optuna.Trial | None = None, fixed: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self._trial, self._fixed = trial, dict(fixed or {})
        self.notes: list[str] = []

    def _register(self, hyperparameter: Any, overwrite: bool = False) -> Any:
        value = super()._register(hyperparameter, overwrite)
        if value is None:  # inactive under a conditional scope: Optuna never sees it
            return None
        name = hyperparameter.name
        if name in self._fixed:
            value = self._fixed[name]
        elif self._trial is not None:
            value = self._suggest(hyperparameter)
        self.values[name] = value
        return value

    def _suggest(self, hp: Any) -> Any:
        trial, name = self._trial, hp.name
        assert trial is not None
        if isinstance(hp, kt.engine.hyperparameters.Boolean):
            return trial.suggest_categorical(name, [True, False])
        if isinstance(hp, kt.engine.hyperparameters.Choice):
            return trial.suggest_categorical(name, list(hp.values))
        if isinstance(hp, kt.engine.hyperparameters.Fixed):
            return hp.value
        log = hp.sampling in ("log", "reverse_log")
        step = hp.step
        if log and step is not None and step != 1:
            note = (
                f"hyperparameter {name!r}: a log range with step {step} has no Optuna "
                "equivalent; sampled on a log scale without the step"
            )
            if note not in self.notes:
                self.notes.append(note)
                warnings.warn(note, stacklevel=2)
            step = None
        if isinstance(hp, kt.engine.hyperparameters.Int):
            return trial.suggest_int(
                name, int(hp.min_value), int(hp.max_value), step=int(step or 1), log=log
            )
        return trial.suggest_float(
            name, float(hp.min_value), float(hp.max_value), step=None if log else step, log=log
        )


def load_hypermodel(spec: str, base_dir: Path, *, where: str = "<space>") -> Any:
    """`file.py:name` -> the build function or HyperModel it names."""
    return _load(spec, str(base_dir), where)


@cache
def _load(spec: str, base_dir: str, where: str) -> Any:
    file, sep, attr = spec.rpartition(":")
    if not sep or not file.endswith(".py"):
        raise SpaceError(
            f"expected 'path/to/file.py:build_model', got {spec!r}",
            file=where,
            key="model.hypermodel",
        )
    path = Path(file)
    if not path.is_absolute():
        path = Path.cwd() / path if (Path.cwd() / path).is_file() else Path(base_dir) / path
    if not path.is_file():
        raise SpaceError(
            f"no such file {file!r} (looked at {path})", file=where, key="model.hypermodel"
        )
    module_spec = importlib.util.spec_from_file_location(f"hypermodel_{path.stem}", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise SpaceError(
            f"{path}:{exc.lineno}: {exc.msg}", file=where, key="model.hypermodel"
        ) from None
    except Exception as exc:  # whatever the user's module raises while it is imported
        line = next(
            (
                f.lineno
                for f in reversed(traceback.extract_tb(exc.__traceback__))
                if Path(f.filename) == path
            ),
            None,
        )
        raise SpaceError(
            f"{path}:{line}: importing it raised {type(exc).__name__}: {exc}",
            file=where,
            key="model.hypermodel",
        ) from None
    if not hasattr(module, attr):
        raise SpaceError(f"{path.name} has no {attr!r}", file=where, key="model.hypermodel")
    found = getattr(module, attr)
    return found() if isinstance(found, type) and issubclass(found, kt.HyperModel) else found


def build(hypermodel: Any, hp: kt.HyperParameters) -> keras.Model:
    model = hypermodel.build(hp) if isinstance(hypermodel, kt.HyperModel) else hypermodel(hp)
    if not isinstance(model, keras.Model):
        raise TypeError(f"the hypermodel returned {type(model).__name__}, not a keras.Model")
    return model


def hypermodel_values(trial: optuna.Trial, space: Space) -> dict[str, Any]:
    """Build the hypermodel once with Optuna behind `hp` to sample its values."""
    assert space.model.hypermodel is not None
    hypermodel = load_hypermodel(space.model.hypermodel, space.base_dir)
    hp = OptunaHyperParameters(trial)
    compiles = build(hypermodel, hp).compiled  # its own optimizer: the space's does not apply
    if own_fit(hypermodel):  # its `fit` samples values too (`shuffle=hp.Boolean(...)`)
        with contextlib.suppress(Exception):  # what it does past sampling is not run here
            hypermodel.fit(hp, _FitRecorder())
    keras.backend.clear_session()
    for note in hp.notes:
        trial.set_user_attr(Trial.HYPERMODEL_NOTE, note)
    return {
        "hypermodel": space.model.hypermodel,
        "hypermodel_dir": str(space.base_dir),
        "hypermodel_compiles": compiles,
        "hp": dict(hp.values),
    }


def check_head(hypermodel: Any, x: np.ndarray, task: str, n_classes: int, where: str) -> None:
    """One batch through the hypermodel (its default values) before the search starts: its
    input must take the data's columns and its output fit the task, or one line says why."""
    try:
        model = build(hypermodel, OptunaHyperParameters(fixed={}))
        out = keras.ops.convert_to_numpy(model(x[:2].astype("float32"), training=False))
    except Exception as exc:  # Keras names the mismatch; the line names the file and key
        raise SpaceError(
            f"the hypermodel does not take this data's {x.shape[1]} feature columns: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            file=where,
            key="model.hypermodel",
        ) from None
    finally:
        keras.backend.clear_session()
    want = {"binary": 1, "multiclass": n_classes, "regression": 1}[task]
    if out.ndim != 2 or out.shape[1] != want:
        head = {
            "binary": "Dense(1, activation='sigmoid')",
            "multiclass": f"Dense({n_classes}, activation='softmax')",
            "regression": "Dense(1)",
        }[task]
        raise SpaceError(
            f"the hypermodel outputs shape {tuple(out.shape[1:])} per row, but a {task} task "
            f"needs {want} (end the model with {head})",
            file=where,
            key="model.hypermodel",
        )


def own_fit(hypermodel: Any) -> bool:
    """Does this KerasTuner `HyperModel` train with a `fit` of its own, as KerasTuner lets
    it (its `fit(self, hp, model, *args, **kwargs)` may tune `fit`'s arguments)?"""
    return isinstance(hypermodel, kt.HyperModel) and type(hypermodel).fit is not kt.HyperModel.fit


class _FitRecorder:
    """A stand-in model whose `fit` does nothing: a HyperModel's `fit` called with it
    samples its `hp.*` values without training."""

    def fit(self, *args: Any, **kwargs: Any) -> None:
        return None


def fit_with(hypermodel: Any, params: TrialParams, model: keras.Model, **kwargs: Any) -> Any:
    """Train `model` through the hypermodel's own `fit` with the trial's values; the
    History (or Keras' `model.history` when its `fit` returns something else)."""
    hp = OptunaHyperParameters(fixed=params.hp)
    returned = hypermodel.fit(hp, model, **kwargs)
    return returned if hasattr(returned, "history") else model.history


def own_fit_hypermodel(params: TrialParams) -> Any | None:
    """The space's KerasTuner HyperModel when it trains with a `fit` of its own."""
    if not params.hypermodel:
        return None
    hypermodel = load_hypermodel(params.hypermodel, Path(params.hypermodel_dir or "."))
    return hypermodel if own_fit(hypermodel) else None
