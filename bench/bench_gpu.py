"""The GPU benchmark (run by ``bench/gpu.sh``): on one CUDA machine, for SmolLM2 and Gemma 3 (when
their files are at hand) in bfloat16 at 8k and 32k tokens, side by side in one run:

  forward    the fast path's scoring (span_sums: only the answer rows' attention) against a plain
             transformers SDPA forward of the same tokens: seconds and peak memory, and the ratios
  score      prompts per second of answering and scoring (answer_examples with scores)
  train      seconds per epoch of direction training on cached queries and keys
  torchrun   the same `lens-focus score` in one process and under torchrun with 2 processes

Peak memory is CUDA's own allocator statistic (torch.cuda.max_memory_allocated, reset before each
measurement), so it carries none of the process-to-process noise of resident memory. Prompts are
needle-in-a-haystack prompts in the built-in English filler (no data files needed). Writes
``bench/results/gpu-<date>-<device>.md`` naming the device, and prints it.

    bash bench/gpu.sh                          # a CUDA machine: the full run
    python bench/bench_gpu.py --dry-run        # any machine: the CPU, float32, 512 and 1024 tokens

A CUDA machine that cannot download the models takes their shapes instead: ``--export-shapes DIR``
(where the models are at hand) writes each model's configuration and tokenizer, without weights, to
``DIR/<model>``; ``--shapes DIR`` (on the CUDA machine) gives each such folder weights drawn at random
(seed 0) in the run's dtype and benchmarks that model. Time and memory depend on the shapes alone, so
they hold for the real weights; the answers do not (a random model never stops early, so every
answer runs to its full number of new tokens, the most a real model's can take).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESPONSE = " The special magic number is 1234567."


def device_name(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(0)} × {torch.cuda.device_count()}"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


class Meter:
    """Wall time (synchronised) and peak allocated memory of one call on ``device``."""

    def __init__(self, device: str):
        self.device = device

    def __call__(self, fn, repeat: int = 1) -> tuple[float, float | None, object]:
        import torch

        cuda = self.device.startswith("cuda")
        best, peak, out = float("inf"), None, None
        for _ in range(repeat):
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            start = time.perf_counter()
            out = fn()
            if cuda:
                torch.cuda.synchronize()
                peak = (torch.cuda.max_memory_allocated() - base) / 2**20
            best = min(best, time.perf_counter() - start)
        return best, peak, out


def prompts(model, length: int, n: int):
    """``n`` needle prompts of about ``length`` tokens, labelled with :data:`RESPONSE`."""
    from lens_focus import label
    from lens_focus.profile import profile_of

    examples = profile_of(model).needles(model.tokenizer, lengths=[length], depths=[100 * i / max(n - 1, 1) for i in range(n)])
    return examples[:n], [label(e, model.tokenizer, RESPONSE) for e in examples[:n]]


def bench_model(name: str, lengths: list[int], device: str, dtype: str, n_score: int, repeat: int) -> list[dict]:
    import torch
    from transformers import AutoModelForCausalLM

    from lens_focus import load_model, train_directions
    from lens_focus.aliases import resolve
    from lens_focus.answers import answer_examples
    from lens_focus.scoring import span_sums

    meter = Meter(device)
    lm = load_model(name, device=device, dtype=dtype, attention="fast")
    hf = AutoModelForCausalLM.from_pretrained(resolve(name), dtype=getattr(torch, dtype), attn_implementation="sdpa").to(device).eval()
    rows = []
    for length in lengths:
        if length + 64 > lm.cfg.n_ctx:
            rows.append({"model": Path(name).name, "T": length, "skipped": f"context {lm.cfg.n_ctx}"})
            continue
        examples, seqs = prompts(lm, length, max(n_score, 2))
        seq = seqs[0]
        ids = torch.tensor([seq.input_ids], device=device)

        def plain():
            with torch.no_grad():
                return hf(ids, logits_to_keep=1).logits

        meter(plain)  # warm-up
        t_plain, m_plain, _ = meter(plain, repeat)
        t_fast, m_fast, _ = meter(lambda: list(span_sums(lm, [seq], batch_size=1, progress=False)), repeat)
        t_score, m_score, _ = meter(lambda: answer_examples(lm, examples[:n_score], score="generation", max_new_tokens=16, batch_size=1, progress=False))
        t_train, m_train, _ = meter(lambda: train_directions(lm, seqs[:2], epochs=1, progress=False))
        rows.append({
            "model": Path(name).name, "T": len(seq), "plain_s": t_plain, "fast_s": t_fast, "time_ratio": t_fast / t_plain,
            "plain_mb": m_plain, "fast_mb": m_fast, "memory_ratio": (m_fast / m_plain) if m_plain else None,
            "score_prompts_per_s": n_score / t_score, "score_mb": m_score, "train_s_per_epoch_2seq": t_train, "train_mb": m_train,
        })  # fmt: skip
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    del lm, hf
    return rows


def bench_torchrun(name: str, device: str, dtype: str, limit: int) -> dict:
    """``lens-focus score`` alone and under ``torchrun --nproc-per-node 2``: seconds each, and whether
    the two wrote the same scores."""
    import pandas as pd

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        args = ["-m", "lens_focus", "score", "--model", name, "--data", "facts", "--limit", str(limit), "--max-new-tokens", "8",
                "--dtype", dtype, *(["--device", "cpu"] if device == "cpu" else [])]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        for label, launcher in (("1 process", [sys.executable]), ("torchrun 2", [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"])):
            start = time.perf_counter()
            done = subprocess.run([*launcher, *args, "--out", f"{tmp}/{label}"], env=env, capture_output=True, text=True)
            out[label] = time.perf_counter() - start if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
        if all(isinstance(v, float) for v in out.values()):
            a, b = (pd.read_csv(f"{tmp}/{label}/scores.csv") for label in ("1 process", "torchrun 2"))
            out["max_score_difference"] = float((a.score - b.score).abs().max())
            out["speedup"] = out["1 process"] / out["torchrun 2"]
    return out


def export_shapes(names: list[str], out: Path) -> None:
    """Write each model's configuration and tokenizer, without its weights, to ``out/<name>``."""
    from transformers import AutoConfig, AutoTokenizer

    from lens_focus.aliases import resolve

    for name in names:
        path, target = resolve(name), out / name
        AutoConfig.from_pretrained(path).save_pretrained(target)
        AutoTokenizer.from_pretrained(path).save_pretrained(target)
        print(f"wrote {target}: {', '.join(sorted(p.name for p in target.iterdir()))}")


def random_weights(shapes: Path, dtype: str, work: Path) -> list[str]:
    """For each folder of ``shapes`` (a configuration and a tokenizer), a model folder in ``work`` with
    the same files and weights drawn at random (seed 0) in ``dtype``; returns the folders."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folders = []
    for src in sorted(p for p in shapes.iterdir() if (p / "config.json").is_file()):
        torch.manual_seed(0)
        config = AutoConfig.from_pretrained(src)
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
        model.save_pretrained(work / src.name)
        AutoTokenizer.from_pretrained(src).save_pretrained(work / src.name)
        folders.append(str(work / src.name))
        del model
    return folders


def available(name: str) -> bool:
    from lens_focus.aliases import resolve

    try:
        resolve(name)
        return True
    except Exception as e:  # an alias whose wheels are neither cached nor downloadable here
        print(f"note: {name} not available ({type(e).__name__}: {str(e)[:120]}); left out", file=sys.stderr)
        return False


def report(args, device: str, rows: list[dict], torchrun: dict | None) -> str:
    from lens_focus.provenance import versions

    v = versions()
    lines = [f"# GPU benchmark, {datetime.date.today().isoformat()}", "",
             f"Device: **{device_name(device)}**; dtype {args.dtype}; {'dry run (CPU)' if args.dry_run else 'full run'}; "
             f"command `python bench/bench_gpu.py {' '.join(sys.argv[1:])}`; torch {v.get('torch')}, transformers {v.get('transformers')}, "
             f"transformer_lens {v.get('transformer_lens')}, lens_focus {v.get('lens_focus')} (commit {v.get('commit', '?')})."
             + (" Weights drawn at random (seed 0) in the models' shapes (`--shapes`): time and memory hold for the real weights;"
                " every answer runs to its full 16 new tokens." if args.shapes else ""), "",
             "| model | T | plain SDPA s | fast scoring s | fast / plain time | plain MB | fast MB | fast / plain memory | score prompts/s | train s/epoch (2 seq) |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    fmt = lambda x, f="{:.3f}": "n/a" if x is None else f.format(x)  # noqa: E731
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['model']} | {r['T']} | skipped: {r['skipped']} |||||||| ")
            continue
        lines.append(f"| {r['model']} | {r['T']} | {fmt(r['plain_s'])} | {fmt(r['fast_s'])} | {fmt(r['time_ratio'], '{:.2f}x')} | "
                     f"{fmt(r['plain_mb'], '{:.0f}')} | {fmt(r['fast_mb'], '{:.0f}')} | {fmt(r['memory_ratio'], '{:.2f}x')} | "
                     f"{fmt(r['score_prompts_per_s'], '{:.2f}')} | {fmt(r['train_s_per_epoch_2seq'], '{:.2f}')} |")  # fmt: skip
    if torchrun:
        lines += ["", f"`lens-focus score` on {args.torchrun_limit} questions, one process against torchrun with 2: "
                  + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in torchrun.items())]
    if not device.startswith("cuda"):
        lines += ["", "Memory is CUDA's allocator statistic and reads n/a on the CPU; the dry run checks that every part runs."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="smollm2,gemma3-270m")
    ap.add_argument("--lengths", default="8192,32768")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--n-score", type=int, default=4, help="prompts answered and scored per length")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--torchrun-limit", type=int, default=8, help="questions of the torchrun comparison")
    ap.add_argument("--dry-run", action="store_true", help="the CPU, float32, lengths 512,1024, SmolLM2 only, 2 prompts")
    ap.add_argument("--out", type=Path, default=None, help="results file (default bench/results/gpu-<date>-<device>.md)")
    ap.add_argument("--export-shapes", type=Path, default=None, metavar="DIR", help="write each model's configuration and tokenizer to DIR/<model> and stop")
    ap.add_argument("--shapes", type=Path, default=None, metavar="DIR", help="benchmark the models of DIR (from --export-shapes) with weights drawn at random")
    args = ap.parse_args()
    import torch

    if args.export_shapes:
        return export_shapes(args.models.split(","), args.export_shapes)

    if args.dry_run:
        device, args.dtype, args.lengths, args.models, args.n_score, args.repeat, args.torchrun_limit = "cpu", "float32", "512,1024", "smollm2", 2, 1, 2
    elif not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --dry-run to check the benchmark on the CPU")
    else:
        device = "cuda"
    lengths = [int(x) for x in args.lengths.split(",")]
    if args.shapes:  # the folder lives as long as the run: the models are loaded from it
        work = tempfile.TemporaryDirectory()
        names = random_weights(args.shapes, args.dtype, Path(work.name))
    else:
        names = [m for m in args.models.split(",") if available(m)]
    rows = [r for name in names for r in bench_model(name, lengths, device, args.dtype, args.n_score, args.repeat)]
    torchrun = bench_torchrun(names[0], device, args.dtype, args.torchrun_limit) if names else None
    text = report(args, device, rows, torchrun)
    slug = re.sub(r"[^a-z0-9]+", "-", device_name(device).lower()).strip("-")
    out = args.out or REPO / "bench" / "results" / f"gpu-{datetime.date.today().isoformat()}-{'dry-run-' if args.dry_run else ''}{slug}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
