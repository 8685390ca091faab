"""Every figure and table of the paper from one call: :func:`reproduce` runs the steps in dependency
order (contextual scores → the same under the other row convention → heads → compensation → focus directions → sweep → retrieval heads →
Figure 9 → long-context task evaluation → focus directions over seeds → sliding-window layers, for models that have them →
the explorer page ``explore.html``) into one folder and writes ``index.md`` beside them.

Resuming. Each step writes into its own sub-folder and, when it has finished, ``done.json`` with
the parameters it ran under (its slice of the :class:`Plan`, the model, and the stamps of the
steps it read from). A step whose ``done.json`` matches is not run again; one that changed is
redone, and so is every step after it that reads its files. Inside the long steps, every finished
cell (a compensation or sweep setting, a Table 3 strength, a task under a setting) is kept in
``cells.jsonl`` as it completes, so an interrupted step resumes at the cell where it stopped.
The model is loaded only when some step has work to do.

Under ``torchrun`` (``torchrun --nproc-per-node N -m lens_focus reproduce ...``) the steps that
answer questions split them across the ranks and rank 0 writes their files; the other steps run
on rank 0 while the rest wait. Each rank keeps its own cell cache (``cells.IofN.jsonl``), so a
split run resumes with the same number of ranks.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence, get_args

import pandas as pd
from tqdm.auto import tqdm

from analyses import figure9, top_k, window
from analyses.index import write_index

from ..cache import RowCache
from ..defaults import GOLD_POSITIONS, N_DOCS, NEEDLE_DEPTHS, RANDOM_TAU, SETTINGS, TABLE3_ALPHAS, TABLE3_INTERVENE_K, TAUS
from ..directions import FocusDirections
from ..explorer import explore
from ..evaluation import group_by_length, parse_settings
from ..fast import attention_of
from ..heads import load_heads
from ..labels import RowsKind
from ..answers import second_pass_counts, skip_counts
from ..model import attention_layers, load_model, model_info
from ..parts import Part, barrier, broadcast, current_part
from ..plots import plotlyjs_for
from ..profile import Profile, profile_of, profile_of_checkpoint
from ..provenance import versions
from ..sources import load_examples
from ..tasks import TASKS, build_task
from .runs import Log, compensate_run, directions_run, evaluate_run, retrieval_run, score_answers, score_run, seeds_run, sweep_run, write_scored

DONE, PARAMS, CELLS = "done.json", "params.json", "cells.jsonl"
BUILT_IN = ("toy", "facts")
"""The plan's data that is built in rather than read from a file."""


@dataclass(frozen=True)
class Plan:
    """How large every step is. ``positions`` are the relevant document's 1-based positions;
    ``limit`` counts questions (each gives one long prompt per position, plus gold-only and, for
    scoring and compensation, negative prompts)."""
    data: str
    n_docs: int = N_DOCS
    max_new_tokens: int = 8
    batch_size: int = 8
    # contextual scores on held-out questions (Figure 2, Table 1, EM by position)
    score_limit: int = 100
    score_positions: tuple[int, ...] = GOLD_POSITIONS
    # heads ranked on training questions: the heads every intervention uses
    heads_limit: int = 40
    heads_positions: tuple[int, ...] = (1, 10, 20)
    # interventions on held-out questions (Figure 3, Figure 4, Table 3)
    limit: int = 24
    positions: tuple[int, ...] = (1, 10, 20)
    taus: tuple[float, ...] = (0.1, 0.3, 1.5)
    compensation_ks: tuple[int | str, ...] = (1, 5, 20)
    random_tau: float = RANDOM_TAU
    directions_limit: int = 24
    epochs: int = 10
    alphas: tuple[float, ...] = (-0.2, 0.2, 0.5, 1.0)
    sweep_ks: tuple[int | str, ...] = (5, 20, "all")
    table_alphas: tuple[float, ...] = (-0.2, 0.2, 0.5, 1.0)
    table_intervene_k: int = TABLE3_INTERVENE_K
    # retrieval heads (Figure 9)
    needle_lengths: tuple[int, ...] = (1000, 2000)
    needle_depths: tuple[int | float, ...] = NEEDLE_DEPTHS
    needle_new_tokens: int = 24
    # long-context tasks (Tables 2, 5-13)
    tasks: tuple[str, ...] = ("mk_needle", "mk_uuid", "mv", "json_kv", "rerank", "icl", "long_qa", "long_qa_mc")
    task_lengths: tuple[int, ...] = (1000,)
    task_n: int = 6
    settings: tuple[str, ...] = SETTINGS
    nq: str | None = None
    kv: str | None = None
    distractors: str = "random"
    seed: int = 0
    # focus directions replicated over seeds: questions re-split, heads re-ranked, directions retrained per seed
    seeds: tuple[int, ...] = (0, 1, 2)
    seeds_train_limit: int = 200
    seeds_heads_limit: int = 40
    seeds_test_limit: int = 50
    seeds_alpha: float = 0.5
    seeds_k: int = 20
    seeds_prompts: tuple[str, ...] = ("long", "gold")
    rows: str = "generation"
    # sliding-window layers (models that have them): the relevant document inside and beyond the window
    window_n_docs: int = 60
    window_limit: int = 30
    window_positions: tuple[int, ...] = (1, 15, 30, 45, 60)
    # the explorer page (explore.html): test questions at the plan's positions, three settings
    explore_limit: int = 3
    explore_tau: float = 0.1
    explore_compensation_k: int = 5
    explore_alpha: float = 0.5
    explore_focus_k: int = 20

    def __post_init__(self) -> None:
        if self.rows not in get_args(RowsKind):
            raise ValueError(f"rows must be 'generation' (the rows that produce the answer) or 'response' (Eq. 1), got {self.rows!r}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


TOY_FULL = Plan(
    data="toy", max_new_tokens=4, batch_size=32, score_limit=100, heads_limit=100, limit=50,
    taus=TAUS, compensation_ks=(1, 5, 10, 20, "all"), directions_limit=50,
    alphas=(-0.5, -0.2, 0.1, 0.2, 0.3, 0.5, 1.0), sweep_ks=(1, 5, 10, 20, "all"),
    table_alphas=TABLE3_ALPHAS, needle_lengths=(80, 160, 300), needle_new_tokens=4,
    tasks=("toy_needle", "toy_qa"), task_lengths=(80, 160), task_n=20,
    seeds_train_limit=100, seeds_heads_limit=50, seeds_test_limit=50, seeds_alpha=0.3, explore_alpha=0.3,
)  # fmt: skip
TOY_QUICK = replace(
    TOY_FULL, score_limit=20, score_positions=(1, 10, 20), heads_limit=20, limit=10, positions=(1, 20), taus=(0.1, 1.5),
    compensation_ks=(1, 5), directions_limit=10, alphas=(-0.2, 0.3, 1.0), sweep_ks=(5, 20), table_alphas=(0.3,),
    needle_lengths=(80, 160), needle_depths=(0, 50, 100), task_lengths=(80,), task_n=5, settings=("baseline", "20_0.2"),
    seeds=(0, 1), seeds_train_limit=10, seeds_heads_limit=10, seeds_test_limit=10,
)  # fmt: skip
REAL_FULL = Plan(data="facts")
REAL_QUICK = replace(
    REAL_FULL, score_limit=12, score_positions=(1, 10, 20), heads_limit=8, limit=6, positions=(1, 20), taus=(0.1,),
    compensation_ks=(20,), directions_limit=6, alphas=(0.3,), sweep_ks=(20,), table_alphas=(0.3,),
    needle_lengths=(500,), needle_depths=(0, 50, 100), task_lengths=(500,), task_n=3, settings=("baseline", "20_0.2"),
    seeds=(0, 1), seeds_train_limit=6, seeds_heads_limit=6, seeds_test_limit=4, seeds_alpha=0.3,
)  # fmt: skip


def plan_for(profile: Profile, *, quick: bool = False, **overrides) -> Plan:
    """The plan for a model of ``profile`` (:mod:`lens_focus.profile`): a toy-vocabulary model's
    (its own data, tasks and lengths), or a real model's (the ``facts`` task, needle and task
    prompts of 1-2k tokens), full or ``quick``; ``overrides`` replace fields (``data=...``,
    ``nq=...``, lists as tuples), ``None`` values left out."""
    toy = profile.toy_vocabulary
    plan = (TOY_QUICK if quick else TOY_FULL) if toy else (REAL_QUICK if quick else REAL_FULL)
    known = set(plan.to_dict())
    if set(overrides) - known:
        raise ValueError(f"unknown plan fields {sorted(set(overrides) - known)}; the fields are {', '.join(sorted(known))}")
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None}
    if "nq" in given and not toy and "nq" not in plan.tasks:
        given.setdefault("tasks", (*plan.tasks, "nq"))
    return replace(plan, **given)


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    needs: tuple[str, ...]
    fields: tuple[str, ...]
    run: Callable[["Run"], None]
    uses_model: bool = True
    split: bool = False  # under torchrun every rank answers its block of the questions; else rank 0 alone runs it


class Run:
    """The state one :func:`reproduce` call shares between steps: the plan, the folder, the model
    (loaded on first use), and a log that prints above the progress bar."""
    def __init__(self, model_name: str, out: Path, plan: Plan, *, device=None, attention: str = "auto", dtype: str = "float32", log: Log | None = None,
                 device_map=None, max_memory=None, part: Part = Part()):
        self.model_name, self.out, self.plan = model_name, out, plan
        self.device, self.attention, self.dtype = device, attention, dtype
        self.device_map, self.max_memory = device_map, max_memory
        self.part = part
        self.log = (log or tqdm.write) if part.main else _quiet
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = load_model(self.model_name, device=self.device, dtype=self.dtype, attention=self.attention,
                                     device_map=self.device_map, max_memory=self.max_memory)
            self.log(f"model  {model_info(self._model)}; {attention_of(self._model)} attention")
        return self._model

    def dir(self, step: str) -> Path:
        return self.out / step

    def cache(self, step: str) -> RowCache:
        """The step's cell cache; a part of a split run keeps its own (its cells hold its questions only)."""
        own = CELLS if self.part.count == 1 else f"cells.{self.part.index}of{self.part.count}.jsonl"
        return RowCache(self.dir(step) / own)

    def examples(self, *, split: str, limit: int, positions: Sequence[int], variants: Sequence[str]):
        p = self.plan
        return load_examples(p.data, n_docs=p.n_docs, gold_positions=positions, split=split, seed=p.seed, limit=limit, variants=variants,
                             distractors=self.distractors)  # fmt: skip

    @property
    def distractors(self) -> str:
        """The plan's distractors where its data has them to draw (an NQ file), else ``random``."""
        return "random" if self.plan.data in BUILT_IN else self.plan.distractors

    def answer_kw(self) -> dict:
        return {"max_new_tokens": self.plan.max_new_tokens, "stop": "line", "batch_size": self.plan.batch_size}

    def ranked(self):
        info = model_info(self.model)
        return load_heads(self.dir("heads") / "heads.json", n_layers=info.n_layers, n_heads=info.n_heads)

    def directions(self):
        return FocusDirections.load(self.dir("directions") / "directions.safetensors", model=self.model)


def _quiet(_: str) -> None:
    pass


def _score(r: Run) -> None:
    p = r.plan
    ex = r.examples(split="test", limit=p.score_limit, positions=p.score_positions, variants=("long", "gold", "negative"))
    score_run(r.model, ex, r.dir("score"), rows=p.rows, meta={"data": p.data, "split": "test", "limit": p.score_limit}, part=r.part, log=r.log, **r.answer_kw())


def _other_rows(r: Run) -> None:
    p = r.plan
    ex = r.examples(split="test", limit=p.score_limit, positions=p.score_positions, variants=("long", "gold", "negative"))
    meta = {"data": p.data, "split": "test", "limit": p.score_limit, "other_than": p.rows}
    score_run(r.model, ex, r.dir("rows"), rows=OTHER_ROWS[p.rows], meta=meta, part=r.part, log=r.log, **r.answer_kw())


def _heads(r: Run) -> None:
    p = r.plan
    ex = r.examples(split="train", limit=p.heads_limit, positions=p.heads_positions, variants=("long", "gold"))
    meta = {"data": p.data, "split": "train", "limit": p.heads_limit}
    score_run(r.model, ex, r.dir("heads"), rows=p.rows, meta=meta, part=r.part, log=r.log, **r.answer_kw())


def _compensation(r: Run) -> None:
    p = r.plan
    ex = r.examples(split="test", limit=p.limit, positions=p.positions, variants=("long", "gold", "negative"))
    compensate_run(r.model, ex, r.ranked(), r.dir("compensation"), taus=p.taus, ks=p.compensation_ks, random_tau=p.random_tau,
                   seed=p.seed, cache=r.cache("compensation"), part=r.part, log=r.log, **r.answer_kw())  # fmt: skip


def _directions(r: Run) -> None:
    p = r.plan
    ex = r.examples(split="train", limit=p.directions_limit, positions=p.positions, variants=("long", "gold"))
    meta = {"data": p.data, "n_docs": p.n_docs, "split": "train", "limit": p.directions_limit, "data_seed": p.seed}
    directions_run(r.model, ex, r.dir("directions") / "directions.safetensors", rows=p.rows, epochs=p.epochs, seed=p.seed, meta=meta, log=r.log, **r.answer_kw())


def _sweep(r: Run) -> None:
    p = r.plan
    ex = r.examples(split="test", limit=p.limit, positions=p.positions, variants=("long", "gold"))
    sweep_run(r.model, ex, r.directions(), r.ranked(), r.dir("sweep"), alphas=p.alphas, ks=p.sweep_ks, table_alphas=p.table_alphas,
              intervene_k=p.table_intervene_k, rows=p.rows, cache=r.cache("sweep"), part=r.part, log=r.log, **r.answer_kw())  # fmt: skip


def _retrieval(r: Run) -> None:
    p = r.plan
    ex = profile_of(r.model).needles(r.model.tokenizer, lengths=p.needle_lengths, depths=[float(d) for d in p.needle_depths])
    meta = {"lengths": list(p.needle_lengths), "depths": list(p.needle_depths), "filler": "built-in"}
    retrieval_run(r.model, ex, r.dir("retrieval_heads"), max_new_tokens=p.needle_new_tokens, batch_size=max(1, p.batch_size // 2), meta=meta,
                  part=r.part, log=r.log)  # fmt: skip


def _figure9(r: Run) -> None:
    retrieval = pd.read_csv(r.dir("retrieval_heads") / "retrieval_scores.csv")
    why = ("no needle was recalled, so no head has a retrieval score" if retrieval.score.isna().all()
           else "no head has a positive retrieval score, so the retrieval ranking is arbitrary" if retrieval.score.max() <= 0 else None)  # fmt: skip
    if why:
        r.log(f"figure9: {why}; skipped")
        (r.dir("figure9") / "figure9.json").write_text(json.dumps({"skipped": why}) + "\n")
        return
    scores = pd.read_csv(r.dir("score") / "scores.csv")
    k = min(top_k(len(retrieval)), int((retrieval.score > 0).sum()))  # heads tied at 0 have no order
    figure9.write(scores, retrieval, r.dir("figure9"), k=k)
    r.log(f"wrote  {r.dir('figure9')}/ (figure9.csv, figure9.json, figure9.html/png)")


def _tasks(r: Run) -> None:
    p = r.plan
    sets = []
    for name in p.tasks:
        built = build_task(name, r.model.tokenizer, lengths=p.task_lengths, n=p.task_n, seed=p.seed, nq=p.nq, kv=p.kv, distractors=p.distractors)
        sets += group_by_length(TASKS[name], built)
    meta = {"tasks": list(p.tasks), "lengths": list(p.task_lengths), "n": p.task_n, "seed": p.seed, "nq": p.nq, "kv": p.kv or "generated",
            "distractors": p.distractors}  # fmt: skip
    evaluate_run(r.model, sets, r.dir("evaluation"), settings=parse_settings(list(p.settings)), directions=r.directions(), ranked=r.ranked(),
                 batch_size=max(1, p.batch_size // 2), rows=p.rows, meta=meta, cache=r.cache("evaluation"), part=r.part, log=r.log)  # fmt: skip


def _seeds(r: Run) -> None:
    p = r.plan

    def load(*, split, seed, limit, variants):
        return load_examples(p.data, n_docs=p.n_docs, gold_positions=p.positions, split=split, seed=seed, limit=limit, variants=variants,
                             distractors=r.distractors)  # fmt: skip

    seeds_run(r.model, load, r.dir("seeds"), seeds=p.seeds, train_limit=p.seeds_train_limit, heads_limit=p.seeds_heads_limit,
              test_limit=p.seeds_test_limit, alpha=p.seeds_alpha, k=p.seeds_k, prompts=p.seeds_prompts, epochs=p.epochs, rows=p.rows,
              meta={"data": p.data, "n_docs": p.n_docs, "positions": list(p.positions)}, cache=r.cache("seeds"), log=r.log, **r.answer_kw())  # fmt: skip


def _window(r: Run) -> None:
    p = r.plan
    windows = [a.window for a in attention_layers(r.model)]
    if not any(windows) or all(windows):
        why = "no layer has a sliding window" if not any(windows) else "every layer has a sliding window: no full layers to compare"
        r.log(f"window: {why}; skipped")
        (r.dir("window") / "window.json").write_text(json.dumps({"skipped": why}) + "\n")
        return
    ex = load_examples(p.data, n_docs=p.window_n_docs, gold_positions=p.window_positions, split="test", seed=p.seed, limit=p.window_limit,
                       variants=("long",), distractors=r.distractors)  # fmt: skip
    scored = score_answers(r.model, ex, **r.answer_kw())
    write_scored(scored, r.dir("window"), model_name=model_info(r.model).name)
    table = window.write(scored.answered, windows, r.dir("window"))
    meta = {"data": p.data, "n_docs": p.window_n_docs, "positions": list(p.window_positions), "limit": p.window_limit,
            "windows": windows, "second_pass": second_pass_counts(scored.answered), "skipped_answers": skip_counts(scored.answered)}  # fmt: skip
    (r.dir("window") / "window.json").write_text(json.dumps(meta, indent=2) + "\n")
    r.log(f"wrote  {r.dir('window')}/ (window.csv: EM {', '.join(f'{e:.2f}' for e in table.em)} at positions {list(table.gold_position)})")


def _explore(r: Run) -> None:
    p = r.plan
    ex = r.examples(split="test", limit=p.explore_limit, positions=p.positions, variants=("long",))
    page = explore(r.model, ex, scores=pd.read_csv(r.dir("score") / "scores.csv"), ranked=r.ranked(), directions=r.directions(),
                   tau=p.explore_tau, compensation_k=p.explore_compensation_k, alpha=p.explore_alpha, focus_k=p.explore_focus_k,
                   rows=p.rows, title=f"{r.model_name}: contextual heads, compensation and focus directions",
                   sample=f"{p.explore_limit} of the held-out test questions, gold at {', '.join(map(str, p.positions))}", **r.answer_kw())  # fmt: skip
    path = page.save(r.out / EXPLORE_PAGE)
    r.log(f"wrote  {path} ({path.stat().st_size / 2**20:.1f} MB, {len(ex)} examples)")


_ANSWER = ("data", "n_docs", "distractors", "max_new_tokens", "batch_size", "seed")
EXPLORE_PAGE = "explore.html"
OTHER_ROWS = {"generation": "response", "response": "generation"}
STEPS: tuple[Step, ...] = (
    Step("score", "contextual scores on held-out questions", (), (*_ANSWER, "rows", "score_limit", "score_positions"), _score, split=True),
    Step("rows", "the same contextual scores under the other row convention", (), (*_ANSWER, "rows", "score_limit", "score_positions"), _other_rows, split=True),
    Step("heads", "heads ranked on training questions", (), (*_ANSWER, "rows", "heads_limit", "heads_positions"), _heads, split=True),
    Step("compensation", "split-softmax compensation", ("heads",), (*_ANSWER, "limit", "positions", "taus", "compensation_ks", "random_tau"), _compensation, split=True),
    Step("directions", "focus directions", (), (*_ANSWER, "rows", "directions_limit", "positions", "epochs"), _directions),
    Step("sweep", "focus strength and head count", ("heads", "directions"), (*_ANSWER, "rows", "limit", "positions", "alphas", "sweep_ks", "table_alphas", "table_intervene_k"), _sweep, split=True),
    Step("retrieval_heads", "retrieval heads from the needle test", (), ("needle_lengths", "needle_depths", "needle_new_tokens", "batch_size"), _retrieval, split=True),
    Step("figure9", "contextual vs retrieval heads", ("score", "retrieval_heads"), (), _figure9, uses_model=False),
    Step("evaluation", "long-context tasks", ("heads", "directions"), ("tasks", "task_lengths", "task_n", "settings", "nq", "kv", "distractors", "seed", "batch_size", "rows"), _tasks, split=True),
    Step("seeds", "focus directions over seeds, on long and gold-only training prompts", (),
         (*_ANSWER[:-1], "positions", "epochs", "rows", "seeds", "seeds_train_limit", "seeds_heads_limit", "seeds_test_limit", "seeds_alpha",
          "seeds_k", "seeds_prompts"), _seeds),
    Step("window", "sliding-window layers and a relevant document beyond their window", (),
         ("data", "distractors", "max_new_tokens", "batch_size", "seed", "window_n_docs", "window_limit", "window_positions"), _window),
    Step("explore", "the explorer page: heads, examples, compensation and focus directions side by side", ("score", "heads", "directions"),
         (*_ANSWER, "rows", "positions", "explore_limit", "explore_tau", "explore_compensation_k", "explore_alpha", "explore_focus_k"), _explore),
)  # fmt: skip
"""The steps in the order they run; ``needs`` are the steps whose files a step reads."""


LATER_FIELDS = {"rows": "generation", "distractors": "random"}
"""Plan fields added after runs were committed, with the value every earlier run had: at that value a field
stays out of a step's parameters, so that those runs' stamps still match."""


def _reads_nq(step: Step, plan: Plan) -> bool:
    """Whether ``step`` builds NQ prompts, whose distractors the plan's ``distractors`` draws."""
    return ("nq" in plan.tasks) if step.name == "evaluation" else plan.data not in BUILT_IN


def _stamp(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def step_params(step: Step, model_name: str, plan: Plan, stamps: dict[str, str], dtype: str = "float32") -> dict:
    """What a step's results depend on: the model (and its dtype, when not float32), its fields of
    the plan, its inputs' stamps."""
    p = plan.to_dict()
    precision = {"dtype": dtype} if dtype != "float32" and step.uses_model else {}
    # fields added after runs were committed leave their stamps as they were at the value they had before
    # (the rows step always records its rows); distractors count only where NQ prompts are read
    fields = [f for f in step.fields if not (f in LATER_FIELDS and p[f] == LATER_FIELDS[f] and (f, step.name) != ("rows", "rows"))
              and not (f == "distractors" and not _reads_nq(step, plan))]  # fmt: skip
    values = {f: _file_stamp(p[f]) if f in FILE_FIELDS else p[f] for f in fields}
    return {"step": step.name, "model": model_name, **precision, **values, "inputs": {n: stamps[n] for n in step.needs}}


FILE_FIELDS = ("data", "nq", "kv")
"""Plan fields that may name a data file: a step depends on the file's contents, not on where it lies."""


def _file_stamp(value: str | None):
    """A data file as a step's parameters record it, its name and the start of its SHA-256; a
    built-in source's name (or None) as it is."""
    if value is None or value in BUILT_IN:
        return value
    path = Path(value)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16]}


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def reproduce(
    model_name: str,
    out: str | Path,
    *,
    plan: Plan | None = None,
    quick: bool = False,
    steps: Sequence[str] | None = None,
    device: str | None = None,
    attention: str = "auto",
    dtype: str = "float32",
    log: Log | None = None,
    progress: bool = True,
    device_map=None,
    max_memory=None,
) -> dict[str, str]:
    """Run every step not yet done (or only ``steps``, with what they need) into ``out`` and write
    ``out/index.md``. Returns each step's status: ``done`` (already there), ``ran``, or ``skipped``
    (not asked for). Deterministic under the plan's seed. Under torchrun the steps that answer
    questions (score, rows, heads, compensation, sweep, retrieval_heads, evaluation) split them
    across the ranks (:mod:`lens_focus.parts`); the others run on rank 0 while the rest wait."""
    out = Path(out)
    part = current_part()
    plan = plan or plan_for(profile_of_checkpoint(model_name), quick=quick)
    known = {s.name: s for s in STEPS}
    wanted = set(known) if steps is None else set(steps)
    if wanted - set(known):
        raise ValueError(f"unknown steps {sorted(wanted - set(known))}; the steps are {', '.join(known)}")
    for s in reversed(STEPS):  # what a wanted step reads is wanted too
        if s.name in wanted:
            wanted |= set(s.needs)
    run = Run(model_name, out, plan, device=device, attention=attention, dtype=dtype, log=log, device_map=device_map, max_memory=max_memory, part=part)
    if part.main:
        out.mkdir(parents=True, exist_ok=True)
        plotlyjs_for(out)  # one plotly.js for every step's pages (or the one above that they share)
        (out / "plan.json").write_text(json.dumps({"model": model_name, "quick": quick, **({"dtype": dtype} if dtype != "float32" else {}), **plan.to_dict()}, indent=2) + "\n")
    stamps: dict[str, str] = {}
    status: dict[str, str] = {}
    bar = tqdm(STEPS, desc="reproduce", unit="step", disable=not progress or not part.main)
    for step in bar:
        params = step_params(step, model_name, plan, stamps, dtype)
        stamps[step.name] = _stamp(params)
        folder = run.dir(step.name)
        done = _read(folder / DONE)
        # rank 0 decides for every rank of torchrun (they would read the folder at different moments)
        status[step.name] = broadcast(part, "skipped" if step.name not in wanted else "done" if done is not None and done.get("params") == params else "ran")
        if status[step.name] != "ran":
            continue
        bar.set_postfix_str(step.name)
        run.log(f"── {step.name}: {step.title}" + (" (rank 0 alone; the others wait)" if part.count > 1 and not step.split else ""))
        if part.main:
            if _read(folder / PARAMS) != params and folder.exists():
                shutil.rmtree(folder)  # made under other parameters: its cells do not apply
            folder.mkdir(parents=True, exist_ok=True)
            (folder / PARAMS).write_text(json.dumps(params, indent=2) + "\n")
        barrier(part)
        start = time.time()
        if step.split or part.main:
            step.run(run)
        seconds = round(time.time() - start, 1)
        if part.main:
            (folder / DONE).write_text(json.dumps({"params": params, "seconds": seconds}, indent=2) + "\n")
        barrier(part)  # the next step reads this one's files
        run.log(f"   {step.name} done in {seconds} s")
    if not part.main:
        return status
    index = write_index(out, model_name=model_name, plan=plan, versions=versions())
    run.log(f"wrote  {index}")
    return status
