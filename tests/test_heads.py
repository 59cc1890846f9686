"""The output layer and loss follow the task, inferred from the target or forced by the
space file's `task:`: sigmoid + binary cross-entropy, softmax + categorical cross-entropy
(on class codes: its sparse form), linear + MSE; checked on the models a search trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import pytest
from sklearn.datasets import load_breast_cancer, load_wine

from search.models import build as model_module
from search.runner import run_search

SPACE = """
study: {{name: head, trials: 1, pruner: none, seed: 1}}
data: {{source: {source}, target: {target}, task: {task}}}
validation: {{scheme: holdout}}
training: {{engine: sequential}}
params: {{depth: 1, width: 4, epochs: 1, batch_size: 64}}
"""

CASES = [
    # source, task, what the search should make of it, activation, loss, units
    ("breast_cancer", "auto", "binary", "sigmoid", "binary_crossentropy", 1),
    ("wine", "auto", "multiclass", "softmax", "sparse_categorical_crossentropy", 3),
    ("diabetes", "auto", "regression", "linear", "mse", 1),
    # forced: class codes read as numbers, and a binary target as two classes of many
    ("wine.csv", "regression", "regression", "linear", "mse", 1),
    ("bc.csv", "multiclass", "multiclass", "softmax", "sparse_categorical_crossentropy", 2),
]


@pytest.mark.parametrize(("source", "task", "inferred", "activation", "loss", "units"), CASES)
def test_the_head_and_loss_follow_the_task(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    task: str,
    inferred: str,
    activation: str,
    loss: str,
    units: int,
) -> None:
    load_wine(as_frame=True).frame.to_csv(tmp_path / "wine.csv", index=False)
    load_breast_cancer(as_frame=True).frame.to_csv(tmp_path / "bc.csv", index=False)
    built: list[tuple[keras.Model, str]] = []
    build = model_module.build_model

    def spy(params: dict[str, Any], **kwargs: Any) -> keras.Model:
        made = build(params, **kwargs)
        built.append((made, kwargs["task"]))
        return made

    monkeypatch.setattr(model_module, "build_model", spy)
    target = "target" if source.endswith(".csv") else "null"
    space = SPACE.format(source=source, target=target, task=task)
    (tmp_path / "head.yaml").write_text(space)
    run_search(tmp_path / "head.yaml", home=tmp_path / "m", progress=False)
    assert built
    for made, told in built:
        head = made.get_layer("output")
        assert told == inferred
        assert head.activation.__name__ == activation
        assert head.units == units
        assert made.loss == loss
