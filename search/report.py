"""Tables of a study's trials for the terminal."""

from __future__ import annotations

from pathlib import Path

from optuna.trial import TrialState

from search.objective import flat_params
from search.selection import load_study


def best_table(study_name: str, *, storage: str | None, home: str | Path, n: int = 10) -> str:
    study = load_study(study_name, storage, Path(home))
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    reverse = study.direction.name == "MAXIMIZE"
    done.sort(key=lambda t: float(t.value or 0.0), reverse=reverse)
    metric = study.user_attrs.get("metric", "value")
    if not done:
        return f"study {study_name!r}: no complete trial yet"
    shown = done[:n]
    keys = list(flat_params(shown[0].user_attrs.get("params", {"widths": []})))
    header = ["trial", metric, "±", *keys]
    rows = [header]
    for t in shown:
        params = flat_params(t.user_attrs.get("params", {"widths": []}))
        rows.append(
            [
                str(t.number),
                f"{t.value:.4f}",
                f"{t.user_attrs.get('score_std', 0):.4f}",
                *[_fmt(params.get(k, "")) for k in keys],
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(
        [f"study {study_name!r}: {len(done)} complete trials, best {len(shown)}:", *lines]
    )


def _fmt(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
