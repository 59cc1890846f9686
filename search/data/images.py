"""Image folders: one subfolder per class of image files, as
`keras.utils.image_dataset_from_directory` reads them (classes in alphanumeric order of
their folders' names; JPEG, PNG, BMP and GIF files, in any depth of subfolders), each image
decoded, converted to RGB or grayscale and resized (bilinear) to `data.image_size`.

Each image becomes a row of pixels (`p0`, `p1`, ... in C order, height x width x
channels) beside its class's name, so the folds, the test split and the champion work as
for any array source; the sample shape travels with the data set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from search.data.arrays import TARGET
from search.errors import DataError

FORMATS = (".jpeg", ".jpg", ".png", ".bmp", ".gif")


def read_image_folder(
    folder: Path, size: tuple[int, int], color_mode: str, target: str | None, where: str
) -> tuple[pd.DataFrame, str, tuple[int, ...], None]:
    """The images under `folder`'s class subfolders, as rows of pixels and their labels."""
    from PIL import Image, UnidentifiedImageError

    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    files = [
        (name, path)
        for name in classes
        for path in sorted((folder / name).rglob("*"))
        if path.suffix.lower() in FORMATS and path.is_file()
    ]
    found = {name for name, _ in files}
    if len(found) < 2:
        raise DataError(
            f"{folder} holds {len(found)} class folder(s) with images "
            f"({', '.join(sorted(found)) or 'none'}); an image folder needs a subfolder of "
            f"{'/'.join(FORMATS)} files per class, two or more",
            file=where,
            key="data.source",
        )
    height, width = size
    channels = 3 if color_mode == "rgb" else 1
    pixels = np.empty((len(files), height * width * channels), dtype=np.float32)
    for i, (_, path) in enumerate(files):
        try:
            with Image.open(path) as opened:
                converted = opened.convert("RGB" if channels == 3 else "L")
                resized = converted.resize((width, height), Image.Resampling.BILINEAR)
                pixels[i] = np.asarray(resized, dtype=np.float32).reshape(-1)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(
                f"cannot read the image {path}: {exc}", file=where, key="data.source"
            ) from None
    name = target or TARGET
    frame = pd.DataFrame(pixels, columns=[f"p{i}" for i in range(pixels.shape[1])])
    frame[name] = [label for label, _ in files]
    return frame, name, (height, width, channels), None
