"""The explorer page on long prompts: its size and how long it takes to open, side by side with
what storing every token's weight as float16 (the page's earlier format) would take.

    python bench/bench_explorer.py [--model smollm2] [--lengths 1024,8000] [--run figures/smollm2] [--nq FILE]

For one NQ prompt of about T tokens (documents added until T is reached; gold in the middle), the
page of the run's three settings (unmodified, compensation, focus directions; heads and
directions from ``--run``) is built and saved, then opened in headless Chromium (no network)
three times: the time from navigation to the page's ``explorer-ready`` mark, and the time from a
click on a document's segment to the page redrawn (at 8k it opens a closed document's tokens).
Prints per T: tokens, segments, page MB, the MB that float16 per token would take (layers × heads
× T × 2 bytes, base64, per setting), their ratio, and the times (best of three).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NQ = REPO.parent / "shared" / "data" / "lost_in_the_middle" / "nq-open-oracle.jsonl.gz"


def long_example(model, length: int, nq: Path):
    """An NQ example of the file ``nq`` whose prompt is about ``length`` tokens (documents added until it is)."""
    from lens_focus import label, load_examples

    n = max(3, length // 140)
    while True:
        ex = load_examples(nq, limit=1, n_docs=n, gold_positions=[max(1, n // 2)], variants=("long",))[0]
        if len(label(ex, model.tokenizer, "")) >= length:
            return ex
        n += max(1, (length - len(label(ex, model.tokenizer, ""))) // 120)


async def _js(tab, expression: str, wait_for=None):
    """``expression``'s value in ``tab`` (awaited when a promise); with ``wait_for``, polled until it is that value."""
    for _ in range(600):
        reply = await tab.send_command("Runtime.evaluate", params={"expression": expression, "returnByValue": True, "awaitPromise": True})
        value = reply["result"]["result"].get("value")
        if wait_for is None or value == wait_for:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"{expression} never became {wait_for}")


async def open_times(path: Path, repeat: int = 3) -> tuple[float, float]:
    """Best of ``repeat``: seconds from navigation to ``explorer-ready``, and from a click on a document to the page redrawn."""
    from choreographer import Browser

    ready, opened = [], []
    async with Browser(headless=True, proxy_server="127.0.0.1:9") as browser:
        for _ in range(repeat):
            tab = await browser.create_tab(path.resolve().as_uri())
            await _js(tab, "window.explorerReady === true", True)
            ready.append(await _js(tab, "performance.getEntriesByName('explorer-ready')[0].startTime / 1000"))
            seconds = await _js(tab, """new Promise(done => {
                const t0 = performance.now();
                document.querySelector('.seg.p-irrelevant .seglabel').click();  // opens a closed document (closes an open one)
                const wait = () => window.explorerIdle ? done((performance.now() - t0) / 1000) : setTimeout(wait, 5);
                setTimeout(wait, 0);
            })""")
            assert isinstance(seconds, (int, float)), seconds
            opened.append(seconds)
            await tab.close()
    return min(ready), min(opened)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--lengths", default="1024,8000")
    ap.add_argument("--nq", type=Path, default=NQ, help="the lost-in-the-middle NQ file the prompts are built from")
    ap.add_argument("--run", default=str(REPO / "figures" / "smollm2"), help="a reproduce run whose scores, heads and directions the page shows")
    args = ap.parse_args()
    import pandas as pd

    from lens_focus import FocusDirections, explore, load_model
    from lens_focus.heads import load_heads
    from lens_focus.model import model_info

    model = load_model(args.model, device="cpu")
    info, run = model_info(model), Path(args.run)
    scores = pd.read_csv(run / "score" / "scores.csv")
    ranked = load_heads(run / "heads" / "heads.json", n_layers=info.n_layers, n_heads=info.n_heads)
    directions = FocusDirections.load(run / "directions" / "directions.safetensors", model=model)
    rows = []
    for length in [int(x) for x in args.lengths.split(",")]:
        ex = long_example(model, length, args.nq)
        start = time.perf_counter()
        page = explore(model, [ex], scores=scores, ranked=ranked, directions=directions, tau=0.1, compensation_k=5, alpha=0.5, focus_k=20,
                       max_new_tokens=8, batch_size=1, progress=False)  # fmt: skip
        build = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            path = page.save(Path(tmp) / "explore.html")
            size = path.stat().st_size / 2**20
            ready, opened = asyncio.run(open_times(path))
        record = page.data["examples"][0]
        tokens, settings = len(record["tokens"]), len(page.data["settings"])
        float16 = settings * info.n_layers * info.n_heads * tokens * 2 * 4 / 3 / 2**20
        row = {"T": tokens, "segments": len(record["segments"]), "page_mb": round(size, 2), "float16_mb": round(float16, 2),
               "ratio": round(size / float16, 3), "open_s": round(ready, 3), "open_segment_s": round(opened, 3), "build_s": round(build, 1)}  # fmt: skip
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    print(f"{'T':>6} {'segments':>8} {'page MB':>8} {'float16 MB':>10} {'page/f16':>8} {'open s':>7} {'segment s':>9} {'build s':>8}")
    for r in rows:
        print(f"{r['T']:>6} {r['segments']:>8} {r['page_mb']:>8.2f} {r['float16_mb']:>10.2f} {r['ratio']:>8.3f} {r['open_s']:>7.2f} {r['open_segment_s']:>9.3f} {r['build_s']:>8.1f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
