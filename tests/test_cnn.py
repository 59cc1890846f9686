"""Convolution blocks for images (the course's convnets): `conv_blocks`, `filters`,
`kernel_size`, `pooling`, on array sources and on a table of pixels with `data.shape`;
trained one model at a time, selected, served from raw rows and reproduced."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
from sklearn.datasets import load_digits

from search.engines.pack.shape import unpackable
from search.errors import InputError
from search.models.build import build_model
from search.params import TrialParams
from search.prepare import prepare
from search.reproduction import reproduce
from search.runner import run_search
from search.selection.selector import select
from search.space.file import parse_space
from search.space.sampling import suggest
from search.study import open_storage
from tests.conftest import run_cli

PARAMS = {
    "widths": [16],
    "activation": "relu",
    "dropout": 0.0,
    "l1": 0.0,
    "l2": 0.0,
    "batch_norm": False,
    "optimizer": "adam",
    "learning_rate": 0.001,
}


@pytest.mark.parametrize(
    ("shape", "sizes"), [((8, 8), [(4, 4), (2, 2)]), ((32, 32, 3), [(16, 16), (8, 8)])]
)
def test_blocks_double_their_filters_and_halve_the_image(
    shape: tuple[int, ...], sizes: list[tuple[int, int]]
) -> None:
    params = {**PARAMS, "conv_blocks": 2, "filters": 8, "kernel_size": 3, "pooling": "average"}
    model = build_model(TrialParams.read(params), n_features=shape, task="multiclass", n_classes=10)
    convs = [model.get_layer(f"conv_{b}") for b in range(2)]
    assert [c.filters for c in convs] == [8, 16] and convs[0].kernel_size == (3, 3)
    pools = [model.get_layer(f"pool_{b}") for b in range(2)]
    assert all(type(p).__name__ == "AveragePooling2D" for p in pools)
    assert [tuple(p.output.shape[1:3]) for p in pools] == sizes
    assert model.get_layer("output").units == 10
    assert model.predict(np.zeros((2, *shape), np.float32), verbose=0).shape == (2, 10)
    plain = build_model(TrialParams.read(PARAMS), n_features=shape, task="multiclass", n_classes=10)
    assert not any(layer.name.startswith("conv") for layer in plain.layers)  # the MLP


def test_convolution_knobs_apply_only_with_blocks() -> None:
    space = parse_space(
        "data: {source: digits, shape: [8, 8]}\n"
        "params: {conv_blocks: {choices: [0, 2]}, filters: {choices: [8, 16]}}\n"
    )
    seen = {}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        params = suggest(space.params, study.ask()).record()
        seen[params["conv_blocks"]] = params
    assert {"filters", "kernel_size", "pooling"} <= set(seen[2])
    assert not {"filters", "kernel_size", "pooling"} & set(seen[0])
    assert (
        unpackable(TrialParams.read(seen[2])) == "convolution blocks"
        and unpackable(TrialParams.read(seen[0])) is None
    )
    plain = suggest(parse_space("data: {source: digits}\n").params, study.ask())
    assert "conv_blocks" not in plain  # a space without them: the MLP's parameters only


@pytest.mark.parametrize(
    ("data", "key", "match"),
    [
        ("{source: digits}", "params.conv_blocks", "conv_blocks needs images"),
        (
            "{source: digits, shape: [8, 9]}",
            "data.shape",
            "[8, 9] holds 72 values a sample, and the features are 64 columns",
        ),
    ],
)
def test_blocks_without_images_are_one_line(
    tmp_path: Path, data: str, key: str, match: str
) -> None:
    (tmp_path / "s.yaml").write_text(f"data: {data}\nparams: {{conv_blocks: 1}}\n")
    space = parse_space((tmp_path / "s.yaml").read_text(), file=str(tmp_path / "s.yaml"))
    with pytest.raises(InputError, match=re.escape(match)) as info:
        prepare(space)
    assert info.value.key == key
    out = run_cli("run", "s.yaml", "--home", "m", cwd=tmp_path)
    assert out.returncode == 2 and f"{key}: {match}" in out.stderr
    assert not (tmp_path / "m").exists()


def test_a_convnet_on_a_table_of_pixels_searches_selects_serves_and_reproduces(
    tmp_path: Path,
) -> None:
    (tmp_path / "cnn.yaml").write_text(
        "study: {name: cnn, trials: 2, sampler: random, pruner: none, seed: 1}\n"
        "data: {source: digits, shape: [8, 8]}\n"
        "validation: {scheme: kfold, folds: 2}\n"
        "selection: {top_k: 1, recheck_folds: 2, bootstrap: 100, ensemble: false}\n"
        "params: {conv_blocks: 1, filters: {choices: [8, 16]}, depth: 1, width: 32,\n"
        "         epochs: 6, patience: 2, learning_rate: 0.005}\n"
    )
    result = run_search(tmp_path / "cnn.yaml", home=tmp_path / "m", progress=False)
    final = select("cnn", home=tmp_path / "m")
    assert final.test["accuracy"].value > 0.8 and final.beats_baseline
    study = optuna.load_study(study_name="cnn", storage=open_storage(None, tmp_path / "m"))
    best = study.best_trial
    assert best.user_attrs["params"]["conv_blocks"] == 1
    run = mlflow.MlflowClient(result.tracking_uri).get_run(best.user_attrs["mlflow_run_id"])
    assert run.data.tags["search.engine"] == "sequential"  # the pack has no convolutions
    assert reproduce(best.user_attrs["mlflow_run_id"], home=tmp_path / "m").equal
    mlflow.set_tracking_uri(result.tracking_uri)
    champion = mlflow.pyfunc.load_model("models:/cnn@champion")
    rows = load_digits(as_frame=True).data.head(20)  # the 64 pixel columns, raw
    predicted = champion.predict(rows).to_numpy()
    assert (predicted == load_digits().target[:20]).mean() >= 0.8


def test_the_model_family_key() -> None:
    """`model: {family: cnn}` searches 1-3 blocks unless the file says; `family: mlp`
    refuses blocks; `family: text` needs a text column."""
    cnn = parse_space("data: {source: digits, shape: [8, 8]}\nmodel: {family: cnn}\n")
    assert (cnn.params.conv_blocks.low, cnn.params.conv_blocks.high) == (1, 3)  # type: ignore[union-attr]
    fixed = parse_space("data: {source: digits}\nmodel: {family: cnn}\nparams: {conv_blocks: 2}\n")
    assert fixed.params.conv_blocks == 2
    for text, key in (
        ("data: {source: digits, shape: [8, 8]}\nmodel: {family: mlp}\nparams: {conv_blocks: 1}\n",
         "params.conv_blocks"),
        ("data: {source: iris}\nmodel: {family: text}\n", "model.family"),
    ):  # fmt: skip
        with pytest.raises(InputError) as info:
            prepare(parse_space(text))
        assert info.value.key == key
