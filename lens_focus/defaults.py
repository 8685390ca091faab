"""Every parameter of lens_focus, declared once: its name, kind, default, allowed range and help.

The command line (its options, their defaults and ``--help``), ``lens-focus reproduce``'s plans
and the Python API read these :class:`~lens_focus.params.Param` s and check values through them,
so a value is refused alike from every entry (:mod:`lens_focus.params`). Change a default here and
every one of them follows. The paper's grids are the defaults of the commands; ``reproduce``'s
plans size each step for a machine (each step's sizes stand in its declaration,
``lens_focus/commands/experiments/``). docs/method.md says where each grid comes from.

The closed sets of values (rows, sites, stops, ...) are declared here too, as ``Literal`` types
the modules that use them import.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from .params import Param, choices

# ------------------------------------------------------------------------------ closed sets
RowsKind = Literal["generation", "response"]
"""Rows a score averages: ``generation`` (the last prompt token to the second-to-last answer
token, the rows that produce the answer) or ``response`` (the answer's own rows, the paper's Eq. 1)."""
Variant = Literal["long", "gold", "negative"]
"""A prompt's documents: all of them, the relevant one alone, or all but the relevant one."""
StopAt = Literal["line", "eos"]
"""``line``: the response ends at the first line break after some text (the default, as in the
lost-in-the-middle scripts); ``eos``: only the end-of-sequence token or the token budget ends it."""
Split = Literal["train", "test", "all"]
"""A seeded 50/50 split of the questions."""
Distractors = Literal["random", "bm25"]
"""How an NQ prompt's irrelevant documents are drawn from other questions' gold passages when its
record has none of its own: ``random`` (seeded) or ``bm25`` (those most like the question)."""
Site = Literal["post_rotary", "pre_rotary"]
"""Where focus directions are added: after the rotary embedding (the reference placement; ``d_K``
inert) or before it (``hook_q``/``hook_k``)."""
TrainingPrompts = Literal["long", "gold"]
"""The prompt a direction's training sequence starts with before the gold response."""
Attention = Literal["eager", "fast", "auto"]
"""The attention path: the bridge's eager attention, the fast path (SDPA; scores from post-rotary
queries and keys), or ``auto``, fast where it applies."""
DType = Literal["float32", "bfloat16", "float16"]
"""Precision of the model's weights and activations."""
CopiedSpan = Literal["needle", "answer"]
"""What a retrieval head's copy is counted on: the needle's clause its question asks for (Wu et al.)
or the short answer inside it."""
LengthTask = Literal["nq", "long_qa", "toy_qa"]
"""The tasks whose prompts the heads are scored on at each length: one relevant document (NQ's gold
passage, the fact a long account's question asks about, the toy's)."""

# ------------------------------------------------------------------------------ the model
MODEL = Param("model", str, "toy", "hub name, local save_pretrained directory, .gguf file, or an alias: toy, smollm2, gemma3-270m (see lens-focus models)")
DEVICE = Param("device", str, None, "cpu, cuda, cuda:1, ... (default: cuda when available, else cpu)", optional=True)
ATTENTION = Param("attention", choices(Attention), "auto", "fast (SDPA; scores from post-rotary queries and keys), eager (the bridge's attention), or auto: fast where it applies")
DTYPE = Param("dtype", choices(DType), "float32", "precision of the model's weights and activations (scores, patterns and direction training stay float32; README, Precision)")
DEVICE_MAP = Param("device_map", str, None, "split a model across devices: auto, balanced, balanced_low_0, sequential, or a JSON file of module -> device (not with --device; README, A model larger than one GPU)", optional=True)
MAX_MEMORY = Param("max_memory", str, None, "per-device budgets for --device-map, e.g. 0=70GiB,1=70GiB,cpu=200GiB", optional=True)

# ------------------------------------------------------------------------------ multi-document questions
DATA = Param("data", str, None, "data file (.jsonl or .jsonl.gz: a lost-in-the-middle NQ or key-value file), or a built-in task: facts (English facts about people) or toy")
TASK = Param("task", ("nq", "kv"), None, "how to read the data file: nq or kv (default: from its first record)", optional=True)
N_DOCS = Param("n_docs", int, 20, "documents (or key-value pairs) per long prompt (the paper: 20 NQ documents)", low=1)
GOLD_POSITIONS = Param("gold_positions", int, (1, 5, 10, 15, 20), "1-based positions of the relevant document, each <= --n-docs (the lost-in-the-middle positions)", many=True, low=1)
SPLIT = Param("split", choices(Split), "test", "test, train or all (a seeded 50/50 split of the questions)")
LIMIT = Param("limit", int, None, "number of questions (default: all of the split)", low=1, optional=True)
SEED = Param("seed", int, 0, "seed of the data: the train/test split, the distractors and their order", low=0)
DISTRACTORS = Param("distractors", choices(Distractors), "random", "NQ oracle file: the other documents are other questions' gold passages without the answer, drawn at random, or those BM25 ranks highest against the question (bm25)")
VARIANTS = Param("variants", choices(Variant), ("long", "gold"), "prompts to answer and score: long (always), gold, negative", many=True)

# ------------------------------------------------------------------------------ answers and scores
MAX_NEW_TOKENS = Param("max_new_tokens", int, 100, "most tokens generated per answer (the reference code: 100)", low=1)
STOP = Param("stop", choices(StopAt), "line", "line: the answer ends at its first line break; eos: the whole response")
BATCH_SIZE = Param("batch_size", int, 8, "most prompts per forward pass (fewer when long prompts would not fit the memory budget)", low=1)
ROWS = Param("rows", choices(RowsKind), "generation", "rows a score averages: generation (the rows that produce the answer) or response (the answer's own rows, the paper's Eq. 1)")
N_SINK = Param("n_sink", int, 1, "leading tokens that form the sink", low=1)

# ------------------------------------------------------------------------------ inputs of the interventions
HEADS = Param("heads", Path, None, "heads.json from lens-focus score (heads ranked by relevant score)")
DIRECTIONS = Param("directions", Path, None, "a file from lens-focus train-directions")

# ------------------------------------------------------------------------------ split-softmax compensation (Figure 3)
TAUS = Param("taus", float, (0.1, 0.3, 0.6, 1.5, 1000.0), "split-softmax exponents τ > 0 (the paper's Figure 3)", many=True, low=0, above=True, keyed=True)
COMPENSATION_KS = Param("ks", int, (1, 5, 10, 20, 30, 50, 100, 150, 200, 300, 400, 500, 600), "head counts, 'all' allowed (the paper's Figure 3; more than the model has: all)", many=True, low=1, all_ok=True, keyed=True)
RANDOM_TAU = Param("random_tau", float, 0.3, "τ of the random-heads control (> 0)", low=0, above=True, keyed=True)

# ------------------------------------------------------------------------------ focus directions (Figure 4, Table 3)
SITE = Param("site", choices(Site), "post_rotary", "post_rotary (the reference placement; d_K inert) or pre_rotary")
PROMPTS = Param("prompts", choices(TrainingPrompts), "long", "long (every document, as the reference code) or gold (the relevant document alone, as the paper's §3.1) before the gold response")
EPOCHS = Param("epochs", int, 10, "passes over the training sequences (the reference: 10)", low=1)
LR = Param("lr", float, 1e-3, "AdamW learning rate (> 0; the reference: 1e-3)", low=0, above=True)
ALPHAS = Param("alphas", float, (-0.5, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0), "focus strengths α (the paper's Figure 4: -0.5 to 1.0)", many=True, keyed=True)
SWEEP_KS = Param("ks", int, (1, 5, 10, 20, 30, 50, "all"), "head counts, 'all' allowed (the paper's Figure 4)", many=True, low=1, all_ok=True, keyed=True)
TABLE_ALPHAS = Param("table_alphas", float, (-0.2, 0.2, 0.4, 0.5, 1.0), "strengths α of Table 3", many=True, keyed=True)
TABLE_K = Param("table_k", int, 5, "top heads Table 3 reports", low=1, keyed=True)
INTERVENE_K = Param("intervene_k", int, 20, "top heads Table 3's right half intervenes on (its left half: the reported heads)", low=1, keyed=True)

# ------------------------------------------------------------------------------ retrieval heads (Figure 9)
NEEDLE_DEPTHS = Param("depths", float, tuple(float(round(i * 100 / 9)) for i in range(10)), "needle depths in percent (0, 11, ..., 100)", many=True, low=0, high=100)
NEEDLE_LENGTHS = Param("lengths", int, None, "context lengths in tokens (default: 80,160,300 for a toy-vocabulary model; 1000,2000,4000 within the context)", many=True, low=1, optional=True)
FILLER = Param("filler", Path, None, "text file to cut the haystack from (default: built-in English filler)", optional=True)
NEEDLE_NEW_TOKENS = Param("max_new_tokens", int, 50, "most tokens decoded per needle answer (Wu et al.: 50)", low=1)
RETRIEVAL_SPAN = Param("span", choices(CopiedSpan), "needle", "what a copy counts on: needle (Wu et al.: the clause of the needle its question asks for) "
                       "or answer (the short answer inside it, lens_focus's earlier score)")

# ------------------------------------------------------------------------------ long-context tasks (Tables 2, 5-13)
TASKS = Param("tasks", str, None, "task names (default: toy_needle,toy_qa for a toy-vocabulary model; mk_needle,mk_uuid,mv,json_kv,rerank,icl,long_qa,long_qa_mc, and nq with --nq)", many=True, optional=True)
TASK_LENGTHS = Param("lengths", int, None, "context lengths in tokens (default: 80,160 for a toy-vocabulary model; 1000,2000)", many=True, low=1, optional=True,
                     keyed=True)  # a length's prompts are built from (task, seed, length, index) alone: tests/test_tasks.py
SETTINGS = Param("settings", str, ("baseline", "10_0.2", "20_0.2", "10_-0.2", "20_-0.2"), "baseline and <k>_<alpha>: α·d on the top-k heads (the paper's Tables 2, 5-13)", many=True,
                 keyed=True)
TASK_N = Param("n", int, 10, "prompts per task and length", low=1)
TASK_SEED = Param("seed", int, 0, "draws the prompts; nq and json_kv from --kv take other held-out questions per seed", low=0)
NQ = Param("nq", Path, None, "NQ file for the nq task (lost-in-the-middle oracle or 20-document file)", optional=True)
KV = Param("kv", Path, None, "lost-in-the-middle key-value file for json_kv (default: generated UUID pairs)", optional=True)
HELMET = Param("helmet", Path, None, "HELMET data files to evaluate as more tasks", many=True, optional=True)
HELMET_DEMOS = Param("helmet_demos", Path, None, "HELMET demo files, one for each --helmet file in the same place (RAG, re-ranking)", many=True, optional=True)
SHOTS = Param("shots", int, 0, "demonstrations per HELMET prompt (JSON KV: the record's own; RAG, re-ranking: from --helmet-demos)", low=0)
SINK_K = Param("sink_k", int, 5, "top heads whose sink score the sink table averages (the paper's Tables 12-13)", low=1)


# ------------------------------------------------------------------------------ focus directions over seeds
SEEDS = Param("seeds", int, (0, 1, 2), "seeds: per seed the questions are split afresh, heads re-ranked, directions retrained", many=True, low=0)
TRAIN_LIMIT = Param("train_limit", int, 200, "training questions per seed the directions are trained on (one long prompt each)", low=1)
HEADS_LIMIT = Param("heads_limit", int, 40, "training questions per seed the heads are ranked on", low=1)
TEST_LIMIT = Param("test_limit", int, 50, "held-out questions per seed the directions are judged on", low=1)
SEEDS_ALPHA = Param("alpha", float, 0.5, "focus strength α on the top heads")
SEEDS_K = Param("k", int, 20, "top heads the directions steer", low=1)
SEEDS_PROMPTS = Param("prompts", choices(TrainingPrompts), ("long", "gold"), "training prompts, one set of directions each: long, gold", many=True)
TOP = Param("top", int, 5, "top heads whose relevant and sink scores a prompt's record averages", low=1)

# ------------------------------------------------------------------------------ the heads across prompt lengths
LENGTH_TASK = Param("length_task", choices(LengthTask), None, "task whose prompts are scored at each length: nq (needs --nq), long_qa "
                    "or toy_qa (default: nq with --nq, else long_qa; toy_qa for a toy-vocabulary model)", optional=True)
LENGTHS_K = Param("k", int, 20, "top heads per length whose sets are compared between lengths", low=1)

# ------------------------------------------------------------------------------ focus directions for each task category
MATRIX_LENGTH = Param("length", int, None, "context length in tokens of the training and held-out prompts (default: the longest of the task suite's, "
                      "80,160 for a toy-vocabulary model, else 1000,2000)", low=1, optional=True)
TRAIN_N = Param("train_n", int, 30, "training prompts per task; their questions follow the held-out ones' (docs/method.md §9)", low=1)
MATRIX_SETTING = Param("setting", str, "20_0.2", "<k>_<alpha>: every set of directions as α·d on the top-k heads (the paper's Tables 2, 5-13 use k 10, 20 and α ±0.2)")

# ------------------------------------------------------------------------------ the explorer page
EXPLORE_LIMIT = Param("limit", int, 3, "test questions shown, each at every gold position", low=1)
EXPLORE_TAU = Param("tau", float, 0.1, "τ of the compensation shown", low=0, above=True)
EXPLORE_COMPENSATION_K = Param("compensation_k", int, 5, "top heads compensated", low=1)
EXPLORE_ALPHA = Param("alpha", float, 0.5, "focus strength α shown")
EXPLORE_FOCUS_K = Param("focus_k", int, 20, "top heads steered by focus directions", low=1)


def csv(values) -> str:
    """``(0.1, 0.3)`` as ``"0.1,0.3"``: how a list is written on the command line."""
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
