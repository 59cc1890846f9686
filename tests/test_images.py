"""Image folders, one subfolder per class, as `keras.utils.image_dataset_from_directory`
reads them: classes in the folders' order, images resized and converted, a search and a
champion that takes rows of pixels; unreadable images and too few classes are one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search.data.dataset import load_dataset
from search.space.schema import DataSpec
from tests.conftest import run_cli


def _folder(root: Path, per_class: int = 30) -> Path:
    """Two classes told apart by where the bright stripe lies, in PNG and JPEG files of
    sizes that differ from the space's."""
    rng = np.random.default_rng(0)
    for name, rows in (("cats", slice(0, 6)), ("dogs", slice(10, 16))):
        folder = root / "pets" / name / ("nested" if name == "dogs" else "")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, size=(20, 24, 3)).astype(np.uint8)
            pixels[rows] += 180
            suffix = ".png" if i % 2 else ".jpg"
            Image.fromarray(pixels).save(folder / f"{i:03d}{suffix}")
    (root / "pets" / "cats" / "notes.txt").write_text("not an image: skipped")
    return root / "pets"


def test_an_image_folder_loads_as_keras_reads_it(tmp_path: Path) -> None:
    _folder(tmp_path)
    spec = DataSpec(source="pets", image_size=[10, 12])
    data = load_dataset(spec, base_dir=tmp_path)
    assert data.input_shape == (10, 12, 3) and data.X.shape == (60, 10 * 12 * 3)
    assert data.task == "binary" and data.labels == ("cats", "dogs")  # folder order
    first = np.asarray(
        Image.open(tmp_path / "pets" / "cats" / "000.jpg")
        .convert("RGB")
        .resize((12, 10), Image.Resampling.BILINEAR),
        dtype=np.float32,
    )
    np.testing.assert_array_equal(data.X.iloc[0].to_numpy(), first.reshape(-1))
    gray = load_dataset(
        DataSpec(source="pets", image_size=[8, 8], color_mode="grayscale"), base_dir=tmp_path
    )
    assert gray.input_shape == (8, 8, 1)


def test_an_image_folder_searches_and_its_champion_takes_pixels(tmp_path: Path) -> None:
    _folder(tmp_path)
    (tmp_path / "pets.yaml").write_text(
        "study: {name: pets, trials: 1, pruner: none}\n"
        "data: {source: pets, image_size: [10, 12]}\n"
        "validation: {scheme: holdout}\n"
        "selection: {top_k: 1, recheck_folds: 2, bootstrap: 100}\n"
        "params: {conv_blocks: 1, filters: 8, depth: 1, width: 16, epochs: 15, patience: 3,\n"
        "         learning_rate: 0.005}\n"
    )
    out = run_cli("run", "pets.yaml", "--home", "m", "-q", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    accuracy = next(line for line in out.stdout.splitlines() if line.strip().startswith("accuracy"))
    assert float(accuracy.split()[1]) > 0.8, out.stdout


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("one class", "holds 1 class folder(s) with images (cats)"),
        ("bad image", "cannot read the image"),
    ],
)
def test_a_folder_that_cannot_be_read_is_one_line(tmp_path: Path, damage: str, match: str) -> None:
    pets = _folder(tmp_path, per_class=3)
    if damage == "one class":
        for f in (pets / "dogs" / "nested").iterdir():
            f.unlink()
    else:
        (pets / "dogs" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "s.yaml").write_text("data: {source: pets}\n")
    out = run_cli("run", "s.yaml", "--home", "m", cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = out.stderr.strip().splitlines()
    assert "s.yaml:1: data.source" in line and match in line, line
    assert not (tmp_path / "m").exists()
