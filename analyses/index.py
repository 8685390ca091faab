"""``index.md`` of a ``lens-focus reproduce`` folder: every step's section, each linking its files
and putting our numbers beside the paper's where both exist.

The sections are the steps' own (each analysis module has the ``section`` of its step, handed in
by the caller with the step's folders): this module knows no step by name. The paper's numbers
are those of Llama-3.2-3B-Instruct on NaturalQuestions with 20 documents (docs/method.md); a
section states beside them what differs in our run. A section whose step has not run yet says so
instead of failing.

Effects are stated by one rule (:func:`lens_focus.stats.difference_text`): a change is a rise or
a fall only when its paired 95% interval excludes 0, otherwise "no measurable effect", with the
numbers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from lens_focus.cache import cell_files, cell_seconds
from lens_focus.stats import difference_text

from . import markdown_table


@dataclass(frozen=True)
class Folders:
    """Where a section reads: the run's folder, its step's, and every step's by name."""

    run: Path
    step: Path
    steps: dict[str, Path] = field(default_factory=dict)

    def of(self, step: str) -> Path:
        """The folder of the step ``step`` of the same run."""
        return self.steps.get(step, self.run / step)

    def link(self, path: Path, label: str | None = None) -> str:
        """A Markdown link to ``path`` relative to the run (said missing when it is)."""
        name = label or path.name
        return f"[{name}]({path.relative_to(self.run).as_posix()})" if path.exists() else f"{name} (missing)"

    def links(self, *paths: Path, optional: tuple[Path, ...] = ()) -> str:
        """Links to ``paths`` (a missing one said missing) and to those of ``optional`` that exist."""
        return ", ".join([self.link(p) for p in paths] + [self.link(p) for p in optional if p.exists()])

    def image(self, path: Path, alt: str) -> str:
        return f"![{alt}]({path.relative_to(self.run).as_posix()})"


Section = Callable[[Folders], tuple[str, list[dict]]]
"""``section(folders)``: a step's text and its rows (:func:`row`)."""


@dataclass(frozen=True)
class IndexSection:
    """A step's place in the index: its title, its folders, its section (None: listed, no
    section), and whether it is left out when the step never ran."""

    title: str
    folders: Folders
    section: Section | None
    optional: bool = False


def row(what: str, ours: str, paper: str) -> dict:
    """A row of a section's table: what, our number, the paper's."""
    return {"": what, "ours": ours, "paper": paper}


def heads_text(pairs) -> str:
    return " ".join(f"({int(l)},{int(h)})" for l, h in pairs)


def diff_text(r) -> str:
    """A table row's paired difference from the unmodified model, when the table has one."""
    r = r.to_dict() if isinstance(r, pd.Series) else r._asdict()  # a row by label or from itertuples
    d = r.get("diff")
    if d is None or pd.isna(d):
        return ""
    return "; paired difference " + difference_text(d, r["diff_low"], r["diff_high"])


PAPER_SETTING = "Llama-3.2-3B-Instruct (672 heads), NaturalQuestions with 20 retrieved documents, the answer's own rows (Eq. 1)"
"""What the paper's numbers in every section were measured on."""


def setting_text(summary: dict) -> str:
    """What a step's numbers were measured on, from its ``summary.json``, to set beside :data:`PAPER_SETTING`."""
    m = summary["model"]
    parts = [f"{m['name']} ({m['n_layers'] * m['n_heads']} heads)"]
    data = summary.get("data")
    if isinstance(data, dict):  # summaries written before the arguments were recorded flat
        data = data.get("data")
    if data:
        parts.append(f"data {Path(str(data)).name}" + (f" with {summary['n_docs']} documents" if summary.get("n_docs") else ""))
    if summary.get("rows"):
        parts.append(f"rows `{summary['rows']}`")
    return ", ".join(parts)


ROWS_NOTE = {
    "generation": "Scores average the rows that produce the answer (last prompt token to second-to-last answer token, `rows = generation`); "
                  "the paper's Eq. 1 averages the answer's own rows (`rows = response`), so rankings and counts set beside its numbers differ by that convention.",
    "response": "Scores average the answer's own rows (`rows = response`), the paper's Eq. 1.",
}  # fmt: skip


def versions_line(versions: dict) -> str:
    """``python 3.11.7, torch 2.13.0, ..., lens_focus 0.1.0 (commit 1a2b3c4d)`` from a versions record."""
    names = [f"{k} {v}" for k, v in versions.items() if k != "commit" and v]
    commit = versions.get("commit")
    return ", ".join(names) + (f" (commit {commit[:12]}{'+dirty' if commit.endswith('+dirty') else ''})" if commit else "")


def _versions_section(out: Path, versions: dict) -> str:
    """The versions the index is written under, and any step folder whose summary records others."""
    text = f"Made with {versions_line(versions)}."
    for summary in sorted(out.glob("*/summary.json")):
        theirs = json.loads(summary.read_text()).get("versions")
        if theirs is None:
            text += f" Step `{summary.parent.name}` records no versions (run before they were recorded)."
        elif {k: v for k, v in theirs.items() if k != "commit"} != {k: v for k, v in versions.items() if k != "commit"}:
            text += f" Step `{summary.parent.name}` ran under {versions_line(theirs)}."
    return text + "\n"


def step_time(name: str, done: dict) -> str:
    """The index's line on what step ``name`` took (its ``done.json``: the last run's seconds, and
    for a step resumed over several runs what all its cells took)."""
    seconds, cells = done.get("seconds"), done.get("cells") or {}
    if seconds is None:
        return ""
    if not cells.get("found"):
        return f"\n\nStep `{name}`: {seconds} s."
    untimed = cells["n"] - cells["timed"]
    return (f"\n\nStep `{name}`: {seconds} s in its last run, which found {cells['found']} of its {cells['n']} cells done by earlier runs; "
            f"computing the cells took {cells['seconds']:,.0f} s in all"
            + (f" ({untimed} of them untimed: computed before cells recorded their time)" if untimed else "") + ".")


def write_index(out: str | Path, sections: list[IndexSection], *, model_name: str, data: str | None = None, versions: dict | None = None,
                explorer: str = "explore.html") -> Path:  # fmt: skip
    """Write ``out/index.md`` from what the step folders hold, a section per entry of
    ``sections``; returns its path. ``versions`` (see :func:`lens_focus.provenance.versions`) is the
    environment the run is finished in."""
    out = Path(out)
    parts = [f"# Reproduction: {model_name}\n",
             "Every figure and table of the paper regenerated by `lens-focus reproduce`; each section links the files and "
             "puts our number beside the paper's (Llama-3.2-3B-Instruct, NaturalQuestions, 20 documents), naming what differs. "
             "A change is called a rise or a fall only where its paired 95% interval excludes 0. "
             "The plan of the run (sizes, data, seed) is in [plan.json](plan.json)" + (f"; data `{data}`" if data else "") + ".\n"]  # fmt: skip
    if versions is not None:
        parts.append(_versions_section(out, versions))
    if (out / explorer).exists():
        parts.append(f"**Explore the run:** [{explorer}]({explorer}), one page that works offline: click a head on the map, "
                     "read its attention over an example's prompt and documents, without and with compensation and focus "
                     "directions, with each answer and its EM.\n")  # fmt: skip
    for s in sections:
        step = s.folders.step
        if s.optional and not step.exists():
            continue
        parts.append(f"## {s.title}\n")
        if not (step / "done.json").exists():
            cells = cell_seconds(cell_files(step))  # finished cells (not a line being written)
            done = f"{cells.planned - cells.left} of its {cells.planned} cells" if cells.planned else f"{cells.n} cells of its work"
            parts.append(f"Not finished yet (step `{step.name}`: {done} done; `lens-focus reproduce` resumes it).\n" if cells.n
                         else f"Not run yet (step `{step.name}`).\n")  # fmt: skip
            continue
        text, rows = s.section(s.folders) if s.section else ("", [])
        parts.append(text + step_time(step.name, json.loads((step / "done.json").read_text())) + "\n")
        if rows:
            parts.append(markdown_table(pd.DataFrame(rows, columns=["", "ours", "paper"])))
    path = out / "index.md"
    path.write_text("\n".join(parts))
    return path
