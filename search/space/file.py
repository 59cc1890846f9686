"""Reading a space file: YAML as users write it (no key twice, `1e-3` a number), the
schema's errors turned into one line naming the file, the key and its line."""

from __future__ import annotations

import contextlib
import difflib
import errno
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from search.errors import SpaceError
from search.space.check import check_semantics
from search.space.schema import Params, Range, Space
from search.space.yamltext import (
    MAX_BYTES,
    DuplicateKey,
    Loader,
    TooLarge,
    compose_bounded,
    line_of,
)


def load_space(path: str | Path) -> Space:
    """Read and validate a space file; raise SpaceError naming file, key and line."""
    path = Path(path)
    if path.is_dir():
        raise SpaceError("is a directory, not a space file", file=str(path))
    if not path.is_file():
        raise SpaceError(_not_a_file(path), file=str(path))
    size = path.stat().st_size
    if size > MAX_BYTES:  # refused before it is read
        raise SpaceError(
            f"{size:,} bytes, over the {MAX_BYTES:,} a space file may hold", file=str(path)
        )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SpaceError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8",
            file=str(path),
            line=line,
        ) from None
    return parse_space(text, file=str(path))


def _not_a_file(path: Path) -> str:
    """Why a space file cannot be read, in words: a symlink loop is not "no such file"."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop, not a space file"
        if path.is_symlink():
            return f"a symlink to nothing ({os.readlink(path)}), not a space file"
        return f"no such space file (looked in {Path.cwd()})"
    return "not a regular file, not a space file"


def parse_space(text: str, *, file: str = "<space>", origin: str | None = None) -> Space:
    """Validate a space file's text; `origin` is the folder its relative paths start from."""
    try:
        root = compose_bounded(text)  # first: nothing expanded yet
        raw = yaml.load(text, Loader=Loader)
    except TooLarge as big:
        raise SpaceError(big.reason, file=file, line=big.line) from None
    except DuplicateKey as dup:
        raise SpaceError(
            f"key `{dup.key}` is written twice in one mapping (first on line {dup.first}); "
            "YAML would silently keep the last one",
            file=file,
            key=str(dup.key),
            line=dup.line,
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise SpaceError(
            f"not valid YAML ({getattr(exc, 'problem', exc)})", file=file, line=line
        ) from None
    if not isinstance(raw, dict):
        raise SpaceError(
            f"a space file must be a mapping of sections, got {type(raw).__name__}", file=file
        )
    try:
        space = Space.model_validate(
            {**family_defaults(raw), "path": file, "text": text, "origin": origin}
        )
    except ValidationError as exc:
        raise _space_error(exc, file, root) from None
    check_semantics(space, file, root)
    return space


def _space_error(exc: ValidationError, file: str, root: yaml.Node | None) -> SpaceError:
    # In a union (`int | "auto"`, a fixed value of any type) pydantic reports one error per
    # member; the one that says what is wrong is not a type mismatch.
    vague = ("_type", "_parsing", "literal_error", "union_tag_invalid")
    err = min(exc.errors(), key=lambda e: e["type"].endswith(vague))
    loc = [str(p) for p in err["loc"] if not _union_member(p)]
    key = ".".join(loc)
    if err["type"] == "extra_forbidden":
        model = _model_at(loc[:-1])
        valid = list(model.model_fields) if model else []
        valid = [v for v in valid if v not in ("path", "text", "origin")]
        near = difflib.get_close_matches(loc[-1], valid, n=1)
        hint = f"; did you mean `{near[0]}`?" if near else ""
        msg = f"unknown key `{loc[-1]}`{hint} (allowed: {', '.join(valid)})"
    elif err["type"] == "missing":
        msg = "this key is required"
    elif err["type"] == "too_short" and loc[-1] == "choices":
        msg = "an empty choice: list at least one value"
    elif len(loc) == 2 and loc[0] == "params" and err["type"].endswith(vague):
        msg = (
            "expected a value, a range `{low: .., high: ..}` or a choice "
            f"`{{choices: [..]}}` (got {err.get('input')!r})"
        )
    else:
        msg = err["msg"].removeprefix("Value error, ")
        if "input" in err and not isinstance(err["input"], dict):
            msg += f" (got {err['input']!r})"
    return SpaceError(msg, file=file, key=key, line=line_of(root, loc))


def _union_member(part: Any) -> bool:
    """pydantic's name for the member of a union an error came from: not a key."""
    tags = ("range", "choice", "fixed", "bool", "int", "float", "str")
    return isinstance(part, str) and (part in tags or "[" in part or "-" in part)


def _model_at(loc: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = Space
    for part in loc:
        info = model.model_fields.get(part)
        ann = info.annotation if info else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return Range if part in Params.model_fields else None
        model = ann
    return model


def family_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """`model: {family: cnn}` searches 1 to 3 convolution blocks unless the file says."""
    model, given = raw.get("model"), raw.get("params")
    params: dict[str, Any] = given if isinstance(given, dict) else {}
    if isinstance(model, dict) and model.get("family") == "cnn" and "conv_blocks" not in params:
        return {**raw, "params": {**params, "conv_blocks": {"low": 1, "high": 3}}}
    return raw


def ran_text(space: Space) -> str:
    """The space as it runs: its file's text, or, when the object was changed in memory
    after it was read (`space.model_copy(update=...)`), the YAML of what it now says."""
    if space.text:
        with contextlib.suppress(SpaceError):
            read = parse_space(space.text, origin=space.origin)
            if read.model_dump(warnings=False) == space.model_dump(warnings=False):
                return space.text
    dumped = yaml.safe_dump(space.model_dump(mode="json", warnings=False), sort_keys=False)
    return "# the space as it ran (changed in memory after it was read)\n" + dumped
