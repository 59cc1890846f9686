"""The engine contract: one battery every engine passes to be choosable.

Numbers. For each row of knobs, a member trained by the pack engine and the same network
trained by Keras' `fit` with the sequential engine's callbacks, from the same starting
weights on the same fold: the per-epoch losses and validation losses agree within
`rel=2e-4, abs=1e-5` (float32 arithmetic summed in another order: XLA's fused program
against Keras' ops), the restored epoch is the same, and so are the predictions. Rows run
with one batch an epoch: the rows' order and dropout's draws are each engine's own
(seeded, but not the same stream), so those knobs are held by the statistics rows below.

Behaviour. Both engines stop a member where the hook prunes it, fail a diverging member
with a reason naming the learning rate, and train a member the same way twice.

Records. A search trained by each engine records the same MLflow params for its trials.

A new knob is a new row: the battery fails until both engines carry it alike.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pytest

from search.data.dataset import Dataset
from search.engines.base import Engine, Member, Trained
from search.engines.pack.engine import PackEngine
from search.engines.pack.shape import Limits, unpackable
from search.engines.sequential import SequentialEngine
from search.metrics import DATA_LOSS
from search.names import TASK_LOSSES
from search.params import TrialParams
from search.runner import run_search
from tests.test_pack_knobs import BASE, _fold, _keras_fit

ROWS: dict[str, dict[str, Any]] = {
    "adam": {},
    "adamw": {"optimizer": "adamw"},
    "adamw, weight decay": {"optimizer": "adamw", "weight_decay": 0.05},
    "nadam": {"optimizer": "nadam"},
    "adamax": {"optimizer": "adamax"},
    "adagrad": {"optimizer": "adagrad", "learning_rate": 0.1},
    "rmsprop, momentum": {"optimizer": "rmsprop", "momentum": 0.5},
    "lion": {"optimizer": "lion", "learning_rate": 0.002},
    "lion, weight decay": {"optimizer": "lion", "learning_rate": 0.002, "weight_decay": 0.5},
    "sgd, nesterov": {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "learning_rate": 0.1},
    "adam, constants": {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-4},
    "nadam, constants": {"optimizer": "nadam", "beta_1": 0.85, "epsilon": 1e-3},
    "adamax, constants": {"optimizer": "adamax", "beta_2": 0.95, "epsilon": 1e-5},
    "rmsprop, epsilon": {"optimizer": "rmsprop", "epsilon": 1e-3},
    "l1 and l2": {"l1": 1e-3, "l2": 1e-3},
    "bias l1 and l2": {"bias_l1": 1e-2, "bias_l2": 1e-2},
    "activity l1 and l2": {"activity_l1": 1e-3, "activity_l2": 1e-3},
    "activity, batch norm": {"activity_l2": 1e-3, "batch_norm": True},
    "per-layer l1 and l2": {"l1s": [1e-3, 0.0], "l2s": [0.0, 2e-3]},
    "elu, three layers": {"activation": "elu", "depth": 3, "widths": [9, 6, 5]},
    "cosine, balanced, min_delta": {
        "schedule": "cosine",
        "class_weight": "balanced",
        "min_delta": 0.01,
    },
    "exponential": {"schedule": "exponential", "lr_decay": 0.7},
    "reduce_lr": {"reduce_lr": 0.3, "reduce_lr_patience": 1, "learning_rate": 0.2},
    "reduce_lr, cosine": {"reduce_lr": 0.3, "reduce_lr_patience": 1, "schedule": "cosine"},
    "regression": {"loss": "auto"},
    "mae": {"loss": "mae"},
    "huber": {"loss": "huber"},
    "log-cosh": {"loss": "log_cosh"},
    "binary mse": {"loss": "mse"},
    "hinge": {"loss": "hinge"},
    "squared hinge": {"loss": "squared_hinge"},
    "binary focal cross-entropy": {"loss": "binary_focal_crossentropy"},
    "categorical cross-entropy": {"loss": "categorical_crossentropy"},
    "categorical hinge": {"loss": "categorical_hinge"},
}
REGRESSION = ("regression", "mae", "huber", "log-cosh")  # rows on a regression data set


def _sources(row: str) -> list[str]:
    """The data sets a row trains on: the regression set, or the classification sets
    whose task the row's loss fits."""
    if row in REGRESSION:
        return ["diabetes"]
    loss = ROWS[row].get("loss", "auto")
    sets = {"binary": "breast_cancer", "multiclass": "wine"}
    return [source for task, source in sets.items() if loss in TASK_LOSSES[task]]


CASES = [(source, row) for row in ROWS for source in _sources(row)]


def _both(params: dict[str, Any]) -> TrialParams:
    trial = TrialParams.read(BASE | params)
    assert unpackable(trial) is None, unpackable(trial)
    return trial


@pytest.mark.parametrize(("source", "row"), CASES, ids=[f"{r}-{s}" for s, r in CASES])
def test_the_pack_trains_a_member_as_the_sequential_engine_does(source: str, row: str) -> None:
    data, arrays = _fold(source)
    member = Member(0, 0, _both(ROWS[row]), 7, arrays)
    (packed,) = PackEngine(limits=Limits(width=16)).train([member], data)
    assert packed.result is not None and packed.build is not None, packed.error
    model, history, restored = _keras_fit(member, data)
    for key in ("loss", "val_loss", DATA_LOSS):
        assert packed.result.history[key] == pytest.approx(history[key], rel=2e-4, abs=1e-5), key
    assert packed.result.best_epoch == restored
    ours = np.asarray(packed.build()(arrays.x_val, training=False))
    assert ours == pytest.approx(np.asarray(model(arrays.x_val, training=False)), abs=1e-4)


ENGINES = {"pack": lambda: PackEngine(limits=Limits(width=16)), "sequential": SequentialEngine}


def _train(engine: Engine, member: Member, data: Dataset, hook: Any = None) -> Trained:
    (trained,) = engine.train([member], data, hook)
    return trained


@pytest.mark.parametrize("engine", list(ENGINES))
def test_each_engine_stops_where_the_pruner_says_and_fails_a_diverging_member(
    engine: str,
) -> None:
    data, arrays = _fold("breast_cancer")
    trial = _both({"epochs": 12})

    def prune_at_4(member: Member, epoch: int, logs: dict[str, float]) -> bool:
        return epoch == 3

    pruned = _train(ENGINES[engine](), Member(0, 0, trial, 7, arrays), data, prune_at_4)
    assert pruned.result is not None and pruned.pruned_at == 3
    assert pruned.result.epochs == 4
    diverging = trial.with_values(optimizer="sgd", learning_rate=1e6, momentum=0.99)
    failed = _train(ENGINES[engine](), Member(0, 0, diverging, 7, arrays), data)
    assert failed.result is None and failed.error is not None
    assert "diverged" in str(failed.error) and "learning_rate=1e+06" in str(failed.error)


@pytest.mark.parametrize("engine", list(ENGINES))
def test_each_engine_trains_a_member_the_same_way_twice(engine: str) -> None:
    data, arrays = _fold("breast_cancer")
    trial = _both({"batch_size": 32, "dropout": 0.3, "epochs": 6})
    first = _train(ENGINES[engine](), Member(0, 0, trial, 11, arrays), data)
    again = _train(ENGINES[engine](), Member(0, 0, trial, 11, arrays), data)
    assert first.result is not None and again.result is not None
    assert first.result.history == again.result.history
    assert first.result.best_epoch == again.result.best_epoch


DRAWN = {
    "dropout, minibatches": {"dropout": 0.3},
    "batch norm, minibatches": {"batch_norm": True},
}


@pytest.mark.parametrize("row", list(DRAWN))
def test_the_engines_agree_in_distribution_where_their_draws_differ(row: str) -> None:
    """Dropout masks and the batches' order are each engine's own draws: over five seeds,
    the two engines' mean best validation losses agree within three standard errors of
    their difference (the draws' noise; a different training shows as a larger gap)."""
    knobs = {"batch_size": 32, "epochs": 15} | DRAWN[row]
    data, arrays = _fold("breast_cancer")
    trial = _both(knobs)
    best: dict[str, list[float]] = {}
    for name, make in ENGINES.items():
        for seed in range(5):
            trained = _train(make(), Member(0, 0, trial, seed, arrays), data)
            assert trained.result is not None, trained.error
            best.setdefault(name, []).append(min(trained.result.history[DATA_LOSS]))
    pack, seq = np.array(best["pack"]), np.array(best["sequential"])
    error = np.sqrt(pack.var(ddof=1) / len(pack) + seq.var(ddof=1) / len(seq))
    assert abs(pack.mean() - seq.mean()) <= 3 * error, best


SEARCH = """
study: {{name: e, trials: 3, seed: 5}}
data: {{source: breast_cancer}}
validation: {{scheme: kfold, folds: 2}}
training: {{engine: {engine}}}
params:
  depth: {{low: 1, high: 2}}
  width: {{low: 4, high: 16}}
  optimizer: {{choices: [adam, adamw, sgd]}}
  dropout: {{low: 0.0, high: 0.3}}
  epochs: 3
"""


def _trial_params(tmp_path: Any, engine: str) -> list[dict[str, str]]:
    path = tmp_path / f"{engine}.yaml"
    path.write_text(SEARCH.format(engine=engine))
    result = run_search(path, home=tmp_path / engine, progress=False)
    mlflow.set_tracking_uri(result.tracking_uri)
    runs = mlflow.search_runs(
        [result.experiment_id],
        filter_string="tags.`search.role` = 'trial'",
        output_format="list",
    )
    assert {r.data.tags["search.engine"] for r in runs} == {engine}
    return [dict(r.data.params) for r in sorted(runs, key=lambda r: r.data.tags["search.trial"])]


@pytest.mark.slow
def test_both_engines_record_the_same_params(tmp_path: Any) -> None:
    packed, sequential = _trial_params(tmp_path, "pack"), _trial_params(tmp_path, "sequential")
    assert packed == sequential  # same sampler and seed: the same trials, recorded alike


def test_every_row_is_carried_by_the_pack() -> None:
    """A row the pack cannot carry fails here, not silently in the sequential engine."""
    for row, knobs in ROWS.items():
        assert unpackable(TrialParams.read(BASE | knobs)) is None, row


def test_the_docs_table_is_the_engines_declarations() -> None:
    from pathlib import Path

    from search.engines.choose import engines_table
    from search.engines.pack import carried, net

    page = Path(__file__).resolve().parents[1] / "docs" / "engines.md"
    assert page.read_text() == engines_table()
    assert set(net.ACTIVATIONS) == set(carried.ACTIVATIONS)  # the program computes them all


def test_a_forced_pack_refuses_what_it_cannot_carry_and_auto_says_why(tmp_path: Any) -> None:
    from search.engines.choose import choose_engine
    from search.errors import SpaceError
    from search.space.file import load_space

    def space(params: str, engine: str) -> Any:
        path = tmp_path / f"{engine}.yaml"
        path.write_text(
            "data: {source: breast_cancer}\n"
            f"training: {{engine: {engine}}}\n"
            f"params:\n  depth: 2\n{params}"
        )
        return load_space(path)

    convolutions = "  conv_blocks: 1\n"
    with pytest.raises(SpaceError) as refused:
        choose_engine(space(convolutions, "pack"))
    assert "convolution blocks" in str(refused.value) and refused.value.line == 5
    engine, why = choose_engine(space(convolutions, "auto"))
    assert engine.name == "sequential" and why.startswith("the pack does not carry convolution")
    per_layer = "  dropout: {low: 0.0, high: 0.5, per_layer: true}\n"
    engine, why = choose_engine(space(per_layer, "pack"))
    assert engine.name == "pack" and why == ""
    some = "  optimizer: {choices: [adam, ftrl]}\n"
    engine, why = choose_engine(space(some, "auto"))  # only some trials: the pack, they fall back
    assert engine.name == "pack" and why == ""
