"""Work split across processes: the ranks of ``torchrun`` or independent jobs (``--shard I/N``),
each answering its own block of questions, and their parts combined into what one process writes.

>>> part = current_part()                 # under torchrun: this rank of the world; else the whole
>>> mine = part.take(examples)            # whole questions, in contiguous blocks balanced by prompts
>>> everything = combine(part, out, "score", params, compute(mine))   # None except where to write

- **torchrun** (``torchrun --nproc-per-node N -m lens_focus score ...``): ``WORLD_SIZE`` and
  ``RANK`` come from the launcher; the process group is started on ``gloo`` (CPU) or ``nccl``
  (CUDA, each rank on the GPU ``LOCAL_RANK``), every rank's results are gathered on rank 0, and
  rank 0 alone writes the outputs.
- **Shards** (``--shard I/N``, ``I`` from 0 to ``N - 1``; a Slurm array, for instance): each job
  writes its part into its own ``--out`` folder (``part.json``: the run, this part's questions and
  the SHA-256 of its results; the results themselves as JSON and safetensors, never a pickle);
  ``lens-focus merge PART_DIR... --out DIR`` checks every part and writes what one process writes.

Questions are never split between parts (a question's prompts are answered together, as the
Table 1 conditions and the paired intervals need), and the blocks keep the order of the data, so
the parts put back together are the examples in the order one process answers them.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Hashable, Literal, Sequence

import torch

from .labels import Example
from .payloads import dump, load
from .provenance import versions
from .errors import InputError

Launcher = Literal["alone", "torchrun", "shard"]
WAIT = timedelta(hours=int(os.environ.get("LENS_FOCUS_WAIT_HOURS", "24")))
"""How long a rank of torchrun waits for the others (``$LENS_FOCUS_WAIT_HOURS``, 24 by default)."""
PART_JSON, PAYLOAD = "part.json", "results"


@dataclass(frozen=True)
class Part:
    """Which part of the work this process does: ``index`` of ``count``, started by ``launcher``."""

    index: int = 0
    count: int = 1
    launcher: Launcher = "alone"

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise InputError(f"part {self.index} of {self.count}: the index runs from 0 to {self.count - 1}")

    @property
    def main(self) -> bool:
        """Whether this process writes the combined outputs (rank 0, or a process alone)."""
        return self.launcher == "alone" or (self.launcher == "torchrun" and self.index == 0)

    def indices(self, examples: Sequence[Example], keys: Sequence[Hashable] | None = None) -> list[int]:
        """The indices of this part's examples: block ``index`` of :func:`blocks`; an error when it is empty."""
        mine = blocks(examples, self.count, keys)[self.index]
        if not mine:
            n = len(set(_keys(examples, keys)))
            raise InputError(f"part {self.index} of {self.count} has no questions: {n} question(s) split into at most {n} parts")
        return mine

    def take(self, examples: Sequence[Example], keys: Sequence[Hashable] | None = None) -> list[Example]:
        """This part's examples (:meth:`indices`)."""
        return [examples[i] for i in self.indices(examples, keys)]

    def record(self, examples: Sequence[Example], keys: Sequence[Hashable] | None = None) -> dict:
        """The split as ``summary.json`` records it."""
        return {"launcher": self.launcher, "world_size": self.count, "prompts_per_rank": [len(b) for b in blocks(examples, self.count, keys)]}


def _keys(examples: Sequence[Example], keys: Sequence[Hashable] | None) -> list[Hashable]:
    return [e.question_id for e in examples] if keys is None else list(keys)


def blocks(examples: Sequence[Example], count: int, keys: Sequence[Hashable] | None = None) -> list[list[int]]:
    """``count`` contiguous blocks of example indices, whole questions each, as equal in prompts as
    the questions allow (with fewer questions than parts, a question a block and the last empty).
    A question is the examples of one key: ``keys`` (one per example) or their ``question_id``."""
    questions: list[list[int]] = []
    seen: dict[Hashable, int] = {}
    for i, (ex, q) in enumerate(zip(examples, _keys(examples, keys), strict=True)):
        if q in seen and seen[q] != len(questions) - 1:
            raise InputError(f"example {ex.id}: the prompts of question {q} are not next to each other; cannot split by question")
        if q not in seen:
            seen[q] = len(questions)
            questions.append([])
        questions[-1].append(i)
    out: list[list[int]] = [[] for _ in range(count)]
    if len(questions) <= count:  # a question a block, the last blocks empty
        return questions + out[len(questions):]
    total, done = len(examples), 0
    b = 0
    for q in questions:
        # move on once this block holds its share; the last block takes the rest
        while b < count - 1 and done >= total * (b + 1) / count:
            b += 1
        out[b].extend(q)
        done += len(q)
    return out


def parse_shard(text: str) -> Part:
    """``"I/N"`` (``I`` from 0 to ``N - 1``) as a :class:`Part` of launcher ``shard``."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise InputError(f"--shard {text!r}: expected I/N with I from 0 to N - 1 (for example 0/4)") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard {text!r}: I runs from 0 to N - 1 and N >= 1")
    return Part(index, count, "shard")


def current_part(shard: str | None = None) -> Part:
    """This process's part: a rank of ``torchrun`` (the process group started here when it is not
    yet), the shard ``shard`` of independent jobs, or the whole work."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        if shard is not None:
            raise InputError("--shard splits the work between independent jobs; under torchrun the ranks split it")
        import torch.distributed as dist

        if not dist.is_initialized():
            if torch.cuda.is_available():
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            # ranks wait for each other while one runs a step that does not split (reproduce): hours, not the default 30 min
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=WAIT)
        return Part(dist.get_rank(), dist.get_world_size(), "torchrun")
    return parse_shard(shard) if shard is not None else Part()


def barrier(part: Part) -> None:
    """Under torchrun, wait until every rank is here; elsewhere nothing."""
    if part.launcher == "torchrun":
        import torch.distributed as dist

        dist.barrier()


def broadcast(part: Part, value: Any) -> Any:
    """Under torchrun, rank 0's ``value`` on every rank; elsewhere ``value``."""
    if part.launcher != "torchrun":
        return value
    import torch.distributed as dist

    box = [value if part.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def combine(part: Part, out: str | Path, command: str, params: dict, payload: Any, split: dict | None = None,
            question_ids: Sequence[str] = ()) -> list[Any] | None:  # fmt: skip
    """Every part's ``payload``, in part order, where the combined outputs are written (alone:
    ``[payload]``; torchrun: on rank 0, gathered from every rank); None elsewhere. A shard writes
    its part into ``out`` (:func:`write_part`, with ``split``: :meth:`Part.record`, and the ids of
    its ``question_ids``) and gets None."""
    if part.launcher == "alone":
        return [payload]
    if part.launcher == "shard":
        write_part(out, part, command, params, payload, split=split, question_ids=question_ids)
        return None
    import torch.distributed as dist

    gathered: list[Any] | None = [None] * part.count if part.main else None
    dist.gather_object(payload, gathered, dst=0)
    return gathered


def write_part(out: str | Path, part: Part, command: str, params: dict, payload: Any, split: dict | None = None, question_ids: Sequence[str] = ()) -> Path:
    """``out/part.json`` (the command, its parameters, which part, the whole split, this part's
    question ids, the versions, and the SHA-256 of each payload file) beside the payload itself
    (``results.json`` and ``results.safetensors``: :mod:`lens_focus.payloads`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = dump(payload, out / PAYLOAD)
    meta = {"command": command, "part": part.index, "parts": part.count, "params": params, "split": split,
            "question_ids": sorted(set(map(str, question_ids))), "versions": versions(),
            "sha256": {f.name: _sha256(f) for f in files}}  # fmt: skip
    (out / PART_JSON).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def first_difference(a: Any, b: Any, path: str) -> str | None:
    """Where two JSON values first differ, as ``path.key[i]: A vs B``; None when they are equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{path}.{key}: {'absent' if key not in a else json.dumps(a[key])} vs {'absent' if key not in b else json.dumps(b[key])}"
            if (found := first_difference(a[key], b[key], f"{path}.{key}")) is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := first_difference(x, y, f"{path}[{i}]")) is not None), None)
    return None if a == b else f"{path}: {json.dumps(a, default=str)} vs {json.dumps(b, default=str)}"


def _read_meta(folder: Path) -> dict:
    where = folder / PART_JSON
    if not where.is_file():
        raise InputError(f"{folder}: not a part folder (no {PART_JSON}; written by a command run with --shard)")
    try:
        meta = json.loads(where.read_text())
    except ValueError as e:
        raise InputError(f"{where}: not JSON ({e})") from None
    missing = [k for k in ("command", "part", "parts", "params", "split", "question_ids", "versions", "sha256") if k not in meta]
    if missing:
        raise InputError(f"{where}: missing field{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} (written by another version?)")
    for name, digest in meta["sha256"].items():
        f = folder / name
        if not f.is_file():
            raise InputError(f"{f}: missing; its part.json lists it")
        if _sha256(f) != digest:
            raise InputError(f"{f}: its contents do not match the SHA-256 in {where} (truncated or altered)")
    return meta


def read_parts(folders: Sequence[str | Path]) -> tuple[dict, list[Any]]:
    """The ``part.json`` of the first part (``command``, ``params``, ``split``) and the payloads,
    in part order, of the part folders of one split run; an error naming the folder (and the field)
    when one is missing, altered, repeated, holds questions of another part, or is from another run."""
    metas = [(folder, _read_meta(folder)) for folder in map(Path, folders)]
    if not metas:
        raise InputError("no part folders to merge")
    first_folder, first = metas[0]
    for folder, meta in metas[1:]:
        for field in ("command", "parts", "params", "split"):
            if (diff := first_difference(first[field], meta[field], field)) is not None:
                raise InputError(f"{folder} is not a part of the run of {first_folder}: {diff}")
        if meta["versions"].get("lens_focus") != first["versions"].get("lens_focus"):
            raise InputError(f"{folder}: written by lens_focus {meta['versions'].get('lens_focus')}, {first_folder} by {first['versions'].get('lens_focus')}")
    by_index: dict[int, Path] = {}
    seen: dict[str, Path] = {}
    owner: dict[str, Path] = {}
    for folder, meta in metas:
        if meta["part"] in by_index:
            raise InputError(f"{folder} and {by_index[meta['part']]} are both part {meta['part']}")
        by_index[meta["part"]] = folder
        digest = json.dumps(meta["sha256"], sort_keys=True)
        if digest in seen:
            raise InputError(f"{folder} and {seen[digest]} hold the same results (one part under two names)")
        seen[digest] = folder
        shared = sorted(q for q in meta["question_ids"] if q in owner)
        if shared:
            raise InputError(f"{folder} and {owner[shared[0]]} both hold question {shared[0]}" + (f" and {len(shared) - 1} more" if len(shared) > 1 else ""))
        owner.update({q: folder for q in meta["question_ids"]})
    missing = sorted(set(range(first["parts"])) - set(by_index))
    if missing:
        raise InputError(f"parts {', '.join(map(str, missing))} of {first['parts']} are missing (have {', '.join(map(str, sorted(by_index)))})")
    return first, [load(by_index[i] / PAYLOAD) for i in range(first["parts"])]
