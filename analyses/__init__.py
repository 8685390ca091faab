"""One module per figure or table of the paper: ``compute(...)`` returns tidy data (and a figure),
``write(...)`` puts the files into a folder. No scoring or hook code lives here."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from lens_focus.plots import write_figure
from lens_focus.stats import em_interval


def top_k(n_heads: int, k: int = 20) -> int:
    """How many top heads a comparison takes: the paper's ``k`` (20), at most a quarter of a small
    model's heads (at least one)."""
    return min(k, max(1, n_heads // 4))


def em_error_bars(em, n) -> dict:
    """Plotly ``error_y`` of 95% Wilson intervals for exact-match rates ``em`` over ``n`` prompts."""
    bounds = [em_interval(float(e), int(k)) for e, k in zip(em, n)]
    return dict(type="data", symmetric=False, array=[hi - e for (_, hi), e in zip(bounds, em)],
                arrayminus=[e - lo for (lo, _), e in zip(bounds, em)], thickness=1)  # fmt: skip


def markdown_table(df: pd.DataFrame, *, floatfmt: str = ".3f") -> str:
    """A GitHub-flavoured Markdown table of ``df`` (floats formatted with ``floatfmt``)."""

    def cell(v) -> str:
        if isinstance(v, float):
            return "" if pd.isna(v) else format(v, floatfmt)
        return str(v)

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, stem: str | Path, *, title: str | None = None) -> list[Path]:
    """``stem.csv`` and ``stem.md`` (with an optional heading)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    df.to_csv(csv, index=False)
    md.write_text((f"## {title}\n\n" if title else "") + markdown_table(df))
    return [csv, md]


def require_columns(table: pd.DataFrame, columns, what: str) -> None:
    """A clear error when ``table`` lacks any of ``columns``."""
    missing = set(columns) - set(table.columns)
    if missing:
        raise ValueError(f"{what} lacks columns {sorted(missing)}")


def write_with_figure(table: pd.DataFrame, fig, out_dir: str | Path, stem: str) -> list[Path]:
    """``stem.csv`` from ``table`` and ``stem.html`` (+ ``.png``) from ``fig`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"{stem}.csv", index=False)
    return [out / f"{stem}.csv", *write_figure(fig, out / stem)]
