"""The JAX device the pack runs on: its memory, and the disk cache of compiled programs.

Imported only where JAX is needed: JAX starts when these functions are first called."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def accelerator_memory() -> int | None:
    """Bytes of the first JAX device when it is a GPU or TPU; None on a CPU."""
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return None
    stats = device.memory_stats() or {}
    limit = stats.get("bytes_limit")
    return int(limit) if limit else None


def use_compilation_cache() -> None:
    """Keep compiled pack programs on disk, so that a later search (or process) with the
    same shapes skips XLA's compilation; `SEARCH_JAX_CACHE` names the folder."""
    import jax

    config: Any = jax.config
    if config.jax_compilation_cache_dir:
        return
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "keras-search"
    folder = Path(os.environ.get("SEARCH_JAX_CACHE", default / "jax"))
    config.update("jax_compilation_cache_dir", str(folder))
    config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
