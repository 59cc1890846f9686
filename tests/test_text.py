"""Text as the course reads it: IMDB's reviews and Reuters' newswires as word indexes
(`keras:imdb`, `keras:reuters`, files in Keras' own layouts under a temporary
KERAS_HOME), and a CSV text column, turned into multi-hot (or TF-IDF) vectors whose
vocabulary is learned on each fold's training rows only; CIFAR-10's batches and `.npy`
pairs beside them."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from search.data.columns import Preprocessor, encodings
from search.data.dataset import load_dataset
from search.runner import run_search
from search.selection.selector import select
from search.space.schema import DataSpec
from tests.conftest import run_cli

GOOD, BAD = list(range(20, 40)), list(range(40, 60))  # word indexes of each sentiment
ONLY_IN_TEST = 9_000  # a word no training row has


def _reviews(rng: np.random.Generator, n: int, test: bool) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, size=n)
    x = np.empty(n, dtype=object)
    for i, label in enumerate(y):
        words = list(rng.choice(GOOD if label else BAD, size=6)) + list(rng.integers(60, 400, 10))
        x[i] = [int(w) for w in words] + ([ONLY_IN_TEST] if test else [])
    return x, y


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "keras" / "datasets"
    folder.mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    rng = np.random.default_rng(0)
    x_train, y_train = _reviews(rng, 240, test=False)
    x_test, y_test = _reviews(rng, 80, test=True)
    np.savez(folder / "imdb.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    topics = rng.integers(0, 3, size=150)
    x = np.empty(150, dtype=object)
    for i, t in enumerate(topics):
        x[i] = [int(w) for w in rng.integers(100 * t + 10, 100 * t + 40, 12)]
    np.savez(folder / "reuters.npz", x=x, y=topics)
    return folder


def test_imdb_and_reuters_load_as_keras_gives_them(cache: Path, tmp_path: Path) -> None:
    imdb = load_dataset(DataSpec(source="keras:imdb"), base_dir=tmp_path)
    assert imdb.task == "binary" and list(imdb.X.columns) == ["text"]
    assert imdb.parts is not None and int((imdb.parts == 2).sum()) == 80  # IMDB's test part
    # Keras' layout: shuffled with seed 113, start_char 1, indexes shifted by 3
    with np.load(cache / "imdb.npz", allow_pickle=True) as f:
        order = np.arange(240)
        np.random.RandomState(113).shuffle(order)
        first = [1, *(w + 3 for w in f["x_train"][order[0]])]
        assert imdb.X["text"].iloc[0] == " ".join(map(str, first))
        assert imdb.y[0] == f["y_train"][order[0]]
    assert encodings(imdb.X) == {"text": "text"}  # read as text, not as an identifier
    reuters = load_dataset(DataSpec(source="keras:reuters"), base_dir=tmp_path)
    assert reuters.task == "multiclass" and reuters.n_classes == 3
    assert reuters.parts is not None and int((reuters.parts == 2).sum()) == 30  # the last 20%


def test_the_vocabulary_is_learned_on_training_rows_only(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fitted: list[Preprocessor] = []
    fit = Preprocessor.fit

    def spy(self: Preprocessor, X: pd.DataFrame, y: Any = None) -> Preprocessor:
        fitted.append(fit(self, X, y))
        return self

    monkeypatch.setattr(Preprocessor, "fit", spy)
    (tmp_path / "imdb.yaml").write_text(
        "study: {name: imdb, trials: 2, sampler: random, pruner: none, seed: 2}\n"
        "data: {source: 'keras:imdb', max_tokens: 300}\n"
        "validation: {scheme: kfold, folds: 2}\n"
        "selection: {top_k: 1, recheck_folds: 2, bootstrap: 100, ensemble: false}\n"
        "params: {depth: 1, width: 16, epochs: 15, patience: 3, learning_rate: 0.01}\n"
    )
    run_search(tmp_path / "imdb.yaml", home=tmp_path / "m", progress=False)
    final = select("imdb", home=tmp_path / "m")
    assert fitted
    for pre in fitted:
        (words,) = [t for name, t, _ in pre.parts_ if name.startswith("words")]
        vocabulary = words.named_steps["words"].vocabulary_
        assert len(vocabulary) <= 300  # max_tokens
        assert str(ONLY_IN_TEST + 3) not in vocabulary  # only test rows have it
    # the reviews' sentiment words are learned: the model beats the class priors
    assert final.beats_baseline and final.test["accuracy"].value > 0.9
    # the champion reads raw text rows
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'm' / 'mlflow.db'}")
    champion = mlflow.pyfunc.load_model("models:/imdb@champion")
    rows = pd.DataFrame({"text": ["1 23 24 25 26 27 28 90", "1 43 44 45 46 47 48 90"]})
    assert list(champion.predict(rows)) == [1, 0]


def test_a_csv_text_column_is_read_as_text_and_tfidf_on_request(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    good, bad = ["great", "lovely", "superb", "fine"], ["awful", "dull", "poor", "bad"]
    filler = [f"w{i}" for i in range(50)]
    y = rng.integers(0, 2, size=120)
    texts = [
        " ".join(list(rng.choice(good if t else bad, 3)) + list(rng.choice(filler, 5))) for t in y
    ]
    frame = pd.DataFrame({"review": texts, "stars": rng.integers(1, 6, 120), "liked": y})
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    spec = DataSpec(source="reviews.csv", target="liked")
    data = load_dataset(spec, base_dir=tmp_path)
    assert encodings(data.X) == {"review": "text", "stars": "number"}
    pre = Preprocessor().fit(data.X.iloc[:60])
    x = pre.transform(data.X.iloc[60:])
    assert set(np.unique(x[:, 1:])) <= {0.0, 1.0}  # multi-hot beside the scaled number
    tfidf = Preprocessor({"review": "tfidf"}).fit(data.X.iloc[:60]).transform(data.X.iloc[60:])
    assert tfidf.shape == x.shape and not set(np.unique(tfidf[:, 1:])) <= {0.0, 1.0}
    (tmp_path / "r.yaml").write_text(
        "study: {name: reviews, trials: 1, pruner: none}\n"
        "data: {source: reviews.csv, target: liked, columns: {review: tfidf}}\n"
        "validation: {scheme: holdout}\n"
        "params: {depth: 1, width: 8, epochs: 20, patience: 3, learning_rate: 0.01}\n"
    )
    out = run_cli("run", "r.yaml", "--home", "m", "-q", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "final test" in out.stdout


def _cifar_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:  # as the CIFAR site pickles them: bytes keys, channels first
        pickle.dump({b"data": images.reshape(len(images), -1), b"labels": labels}, f, protocol=2)


def test_cifar10_batches_load_channels_last(cache: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    folder = cache / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    first = rng.integers(0, 255, size=(4, 3, 32, 32), dtype=np.uint8)
    for i in range(1, 6):
        images = first if i == 1 else rng.integers(0, 255, size=(4, 3, 32, 32), dtype=np.uint8)
        _cifar_batch(folder / f"data_batch_{i}", images, [i % 10] * 4)
    _cifar_batch(folder / "test_batch", rng.integers(0, 255, (6, 3, 32, 32), np.uint8), [0] * 6)
    data = load_dataset(DataSpec(source="keras:cifar10"), base_dir=tmp_path)
    assert data.input_shape == (32, 32, 3) and len(data.X) == 26
    assert data.parts is not None and int((data.parts == 2).sum()) == 6
    pixels = data.X.iloc[0].to_numpy().reshape(32, 32, 3)
    np.testing.assert_array_equal(pixels, first[0].transpose(1, 2, 0))  # channels last
    (folder / "data_batch_2").write_bytes(pickle.dumps(print))  # not an array: refused
    out = run_cli(
        "run", "c.yaml", "--home", "m", cwd=_space(tmp_path, "data: {source: 'keras:cifar10'}")
    )
    assert out.returncode == 2 and "cannot read" in out.stderr and "data_batch_2" in out.stderr


def _space(tmp_path: Path, text: str) -> Path:
    (tmp_path / "c.yaml").write_text(text + "\n")
    return tmp_path


def test_npy_pairs_are_samples_and_their_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    np.save(tmp_path / "x.npy", rng.normal(size=(40, 6, 6)).astype(np.float32))
    np.save(tmp_path / "y.npy", np.arange(40) % 2)
    data = load_dataset(DataSpec(source="x.npy", target="y.npy"), base_dir=tmp_path)
    assert data.input_shape == (6, 6) and data.X.shape == (40, 36) and data.task == "binary"
    out = run_cli("run", "c.yaml", "--home", "m", cwd=_space(tmp_path, "data: {source: x.npy}"))
    assert out.returncode == 2 and "needs its labels in another .npy file" in out.stderr
    assert not (tmp_path / "m").exists()


def test_the_vocabulary_size_is_searched_per_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`params.max_tokens: {choices: [...]}`: each trial's folds, its recheck and its
    refit keep that trial's number of words; a space without text is refused."""
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(80)]
    y = rng.integers(0, 2, size=160)
    texts = [" ".join([("good" if t else "bad"), *rng.choice(words, 6)]) for t in y]
    pd.DataFrame({"review": texts, "liked": y}).to_csv(tmp_path / "r.csv", index=False)
    sizes: list[int] = []
    fit = Preprocessor.fit

    def spy(self: Preprocessor, X: pd.DataFrame, y: Any = None) -> Preprocessor:
        fit(self, X, y)
        if "review" in X.columns:
            sizes.append(self.max_tokens)
        return self

    monkeypatch.setattr(Preprocessor, "fit", spy)
    (tmp_path / "v.yaml").write_text(
        "study: {name: vocab, trials: 4, sampler: random, pruner: none, seed: 1}\n"
        "data: {source: r.csv, target: liked}\n"
        "validation: {scheme: kfold, folds: 2}\n"
        "selection: {top_k: 2, recheck_folds: 2, bootstrap: 100, ensemble: false}\n"
        "params: {max_tokens: {choices: [3, 40]}, depth: 1, width: 8, epochs: 5}\n"
    )
    run_search(tmp_path / "v.yaml", home=tmp_path / "m", progress=False)
    searched = set(sizes)
    final = select("vocab", home=tmp_path / "m")
    assert searched == {3, 40}  # both sizes were tried, each fitted on its own
    chosen = final.chosen.trial
    import optuna

    from search.study import open_storage

    study = optuna.load_study(study_name="vocab", storage=open_storage(None, tmp_path / "m"))
    assert sizes[-1] == study.trials[chosen].params["max_tokens"]  # the refit's
    bad = tmp_path / "b.yaml"
    bad.write_text("data: {source: iris}\nparams: {max_tokens: {choices: [3, 40]}}\n")
    out = run_cli("run", "b.yaml", "--home", "m2", cwd=tmp_path)
    assert out.returncode == 2 and "params.max_tokens: max_tokens sizes a text" in out.stderr
