"""The explorer page (lens_focus.explorer): its stored attention checked against scores computed
apart (span_sums under the same intervention), and the page driven in headless Chromium with no
network: click a head, pick an example, read the DOM and a screenshot."""
import asyncio
import base64
import os
import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lens_focus import FocusDirections, explore, load_examples, load_model
from lens_focus.explorer import LEVELS, Explorer, attention_of, encode_run, segment_sums, segments_of
from lens_focus.heads import Head
from lens_focus.interventions import compensation_intervention, focus_intervention
from lens_focus.scoring import mean_attention, span_sums

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "figures" / "toy"


@pytest.fixture(scope="module")
def page():
    toy = load_model("toy", device="cpu")
    scores = pd.read_csv(TOY / "score" / "scores.csv")
    directions = FocusDirections.load(TOY / "directions" / "directions.safetensors", model=toy)
    examples = load_examples("toy", limit=2, gold_positions=[1, 20], variants=("long",))
    built = explore(toy, examples, scores=scores, directions=directions, tau=0.1, compensation_k=5, alpha=0.3, focus_k=20,
                    max_new_tokens=4, batch_size=8, progress=False)  # fmt: skip
    return toy, examples, scores, directions, built


def test_stored_attention_sums_to_the_heads_span_scores(page):
    toy, examples, scores, directions, built = page
    data = built.data
    assert [s["name"] for s in data["settings"]] == ["baseline", "compensation", "focus"] and len(data["examples"]) == 4
    long = scores[(scores.condition == "long") & (scores.span == "relevant")]
    assert data["maps"]["relevant"][1][3] == pytest.approx(float(long[(long.layer == 1) & (long["head"] == 3)].score.iloc[0]), abs=1e-6)
    ranked = [Head(*h) for h in data["top"]]
    makes = {"baseline": None, "compensation": compensation_intervention(toy, ranked[:5], tau=0.1), "focus": focus_intervention(toy, directions, ranked[:20], alpha=0.3)}
    from lens_focus import answer_examples

    for name, make in makes.items():
        answered = answer_examples(toy, examples, intervention=make, max_new_tokens=4, batch_size=8, progress=False)
        for i, a in enumerate(answered):
            ex, run = data["examples"][i], data["examples"][i]["runs"][name]
            assert run["response"] == a.response and run["em"] == a.em
            sums = segment_sums(data, i, name)  # (layer, head, segment), exact
            (apart,) = span_sums(toy, [a.sequence], intervention=make, progress=False)
            for j, seg in enumerate(ex["segments"]):
                if seg["name"] in apart and seg["name"] in toy_documents(ex):
                    np.testing.assert_allclose(sums[:, :, j], apart[seg["name"]], atol=1e-5, err_msg=f"{name} example {i} {seg['name']}")
            assert ex["segments"][0]["part"] == "sink"
            np.testing.assert_allclose(sums[:, :, 0], apart["sink"], atol=1e-5)
            # the colours: each token's level within half a level of the head's weight, the first token's clipped at the scale
            exact = mean_attention(toy, a.sequence, intervention=make)[:, :, : len(ex["tokens"])]
            shown, scale = attention_of(data, i, name), exact[:, :, 1:].max(-1, keepdims=True)
            assert np.all(np.abs(shown[:, :, 1:] - exact[:, :, 1:]) <= scale / (2 * LEVELS) + 1e-6)
            np.testing.assert_allclose(shown[:, :, :1], np.minimum(exact[:, :, :1], scale), atol=float(scale.max()) / (2 * LEVELS) + 1e-6)
    # the interventions change what the heads read: the page shows a difference
    assert not np.allclose(segment_sums(data, 0, "baseline"), segment_sums(data, 0, "focus"))


def toy_documents(ex: dict) -> set[str]:
    return {d["name"] for d in ex["documents"]}


def test_segments_cover_the_prompt_in_order_with_each_document_whole(page):
    for ex in page[-1].data["examples"]:
        segs = ex["segments"]
        assert segs[0]["start"] == 0 and segs[-1]["end"] == len(ex["tokens"])
        assert all(a["end"] == b["start"] and a["name"] != b["name"] for a, b in zip(segs, segs[1:]))
        for d in ex["documents"]:
            assert {"name": d["name"], "start": d["start"], "end": d["end"]}.items() <= next(s for s in segs if s["name"] == d["name"]).items()
        assert {s["part"] for s in segs} >= {"sink", "question", "relevant", "irrelevant"}


def test_segments_of_merges_runs_and_splits_documents():
    parts = ["sink", "instruction", "instruction", "irrelevant", "irrelevant", "relevant", "relevant", "question"]
    docs = [{"name": "Document 1", "start": 3, "end": 5}, {"name": "Document 2", "start": 5, "end": 7}]
    assert [(s["name"], s["part"], s["start"], s["end"]) for s in segments_of(parts, docs)] == [
        ("sink", "sink", 0, 1), ("instruction", "instruction", 1, 3), ("Document 1", "irrelevant", 3, 5),
        ("Document 2", "relevant", 5, 7), ("question", "question", 7, 8)]  # fmt: skip


def test_encode_run_keeps_sums_exact_and_levels_within_half_a_level():
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(300), size=(3, 2)).astype(np.float32)  # (layer, head, token)
    w[1] = np.nan  # a layer without attention
    segs = segments_of(["sink"] + ["other"] * 99 + ["relevant"] * 200, [])
    data = {"n_layers": 3, "n_heads": 2, "examples": [{"segments": segs, "runs": {"x": encode_run(w, segs, sink_tokens=1)}}]}
    sums = segment_sums(data, 0, "x")
    np.testing.assert_allclose(sums[[0, 2]], np.stack([w[[0, 2], :, s["start"] : s["end"]].sum(-1) for s in segs], -1), rtol=1e-6)
    assert np.isnan(sums[1]).all()
    shown, scale = attention_of(data, 0, "x"), w[[0, 2], :, 1:].max(-1, keepdims=True)
    assert np.all(np.abs(shown[[0, 2], :, 1:] - w[[0, 2], :, 1:]) <= scale / (2 * LEVELS) + 1e-7) and (shown[1] == 0).all()


def run_in_chromium(path: Path, script):
    if shutil.which("chromium") is None:
        if os.environ.get("LENS_FOCUS_REQUIRE_BROWSER"):
            pytest.fail("LENS_FOCUS_REQUIRE_BROWSER is set but there is no chromium")
        pytest.skip("no chromium on this machine (.ci/run installs one)")
    from choreographer import Browser

    async def main():
        # every request through a proxy that does not exist: the page gets no network
        async with Browser(headless=True, proxy_server="127.0.0.1:9") as browser:
            tab = await browser.create_tab(path.resolve().as_uri() + "#head=1,3&example=0")

            async def js(expression):
                for _ in range(50):
                    reply = await tab.send_command("Runtime.evaluate", params={"expression": expression, "returnByValue": True, "awaitPromise": True})
                    result = reply["result"]["result"]
                    if not expression.startswith("window.explorer") or result.get("value"):
                        return result.get("value")
                    await asyncio.sleep(0.1)
                raise AssertionError("the page never became ready")

            async def shot():
                reply = await tab.send_command("Page.captureScreenshot", params={"format": "png"})
                return base64.b64decode(reply["result"]["data"])

            await js("window.explorerReady === true")
            return await script(js, shot, lambda: js("window.explorerIdle === true"))

    return asyncio.run(main())


def png_colours(png: bytes) -> int:
    """How many distinct byte values the image's (filtered) pixel rows hold: a blank page has a handful."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at, idat = 8, b""
    while at < len(png):
        (n,) = struct.unpack(">I", png[at : at + 4])
        if png[at + 4 : at + 8] == b"IDAT":
            idat += png[at + 8 : at + 8 + n]
        at += 12 + n
    return len(set(zlib.decompress(idat)))


def test_the_page_in_a_browser(page, tmp_path):
    toy, examples, scores, directions, built = page
    path = built.save(tmp_path / "explore.html")
    text = path.read_text()
    assert not re.search(r"(src|href)=[\"']?https?:", text)  # nothing to fetch
    data = built.data

    async def script(js, shot, idle):
        seen = {"hash": await js("location.hash"), "columns": await js("document.querySelectorAll('.column').length")}
        await js("document.querySelector('.cell[data-head=\"5,2\"]').click()")  # a head on the map
        sel = "document.getElementById('example')"
        await js(f"{sel}.value = '3'; {sel}.dispatchEvent(new Event('change'))")  # an example
        await idle()
        seen["after"] = await js("location.hash")
        seen["weights"] = await js("JSON.stringify(Object.fromEntries([...document.querySelectorAll('.column')].map(c => "
                                   "[c.dataset.setting, [...c.querySelectorAll('.tok')].map(t => +t.dataset.w)])))")
        seen["bars"] = await js("JSON.stringify(Object.fromEntries([...document.querySelectorAll('.column')].map(c => "
                                "[c.dataset.setting, [...c.querySelectorAll('.bar')].map(b => [b.dataset.doc, +b.dataset.sum])])))")
        seen["png"] = await shot()
        await js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowUp'}))")  # keyboard: one layer up
        seen["key"] = await js("location.hash")
        return seen

    seen = run_in_chromium(path, script)
    import json

    assert seen["hash"] == "#head=1,3&example=0" and seen["columns"] == 3  # the permalink opened head (1,3)
    assert seen["after"] == "#head=5,2&example=3" and seen["key"] == "#head=6,2&example=3"
    weights, bars = json.loads(seen["weights"]), json.loads(seen["bars"])
    for setting in ("baseline", "compensation", "focus"):
        stored = attention_of(data, 3, setting)[5, 2]
        np.testing.assert_allclose(weights[setting], stored, rtol=0, atol=1e-6)  # the colours are the stored weights
        assert len(weights[setting]) == len(data["examples"][3]["tokens"])  # a short prompt opens with every segment shown
        segs, sums = data["examples"][3]["segments"], segment_sums(data, 3, setting)[5, 2]
        assert [d for d, _ in bars[setting]] == [d["name"] for d in data["examples"][3]["documents"]]
        for doc, total in bars[setting]:  # the bars are the exact sums
            assert total == pytest.approx(float(sums[next(j for j, g in enumerate(segs) if g["name"] == doc)]), abs=1e-6)
    assert png_colours(seen["png"]) > 50  # not blank


def test_a_long_prompt_opens_with_its_segments_and_shows_tokens_of_the_one_opened(tmp_path):
    """A synthetic page of 8,192 prompt tokens and 60 documents (no model): the relevant document
    and the question are open, the others closed until clicked; bars and colours as stored."""
    rng = np.random.default_rng(1)
    n_layers, n_heads, T = 2, 3, 8192
    parts = ["sink"] + ["instruction"] * 31 + ["irrelevant"] * 7980 + ["question"] * 180
    docs = [{"name": f"Document {k + 1}", "start": 32 + 133 * k, "end": 32 + 133 * (k + 1), "relevant": k == 40} for k in range(60)]
    for d in docs:
        parts[d["start"] : d["end"]] = ["relevant" if d["relevant"] else "irrelevant"] * (d["end"] - d["start"])
    segs = segments_of(parts, docs)
    runs = {}
    for name in ("baseline", "focus"):
        w = rng.dirichlet(np.full(T, 0.2), size=(n_layers, n_heads)).astype(np.float32)
        runs[name] = {"response": "x", "em": 1.0, **encode_run(w, segs, sink_tokens=1)}
    ex = {"id": "long-0", "gold_position": 41, "answers": ["x"], "tokens": [f"t{i} " for i in range(T)], "documents": docs, "segments": segs, "runs": runs}
    data = {"title": "long", "model": "synthetic", "rows": "generation", "n_layers": n_layers, "n_heads": n_heads, "open_all": 2048,
            "maps": {m: [[0.1] * n_heads] * n_layers for m in ("relevant", "irrelevant_max", "sink")}, "top": [[1, 2]],
            "settings": [{"name": "baseline", "label": "unmodified"}, {"name": "focus", "label": "focus"}], "sample": "", "examples": [ex]}  # fmt: skip
    path = Explorer(data).save(tmp_path / "long.html")
    tokens = "JSON.stringify([...document.querySelectorAll('.column[data-setting=\"focus\"] .tok')].map(t => [+t.dataset.i, +t.dataset.w]))"

    async def script(js, shot, idle):
        seen = {"segments": await js("document.querySelectorAll('.column[data-setting=\"focus\"] .seg').length"), "before": await js(tokens)}
        await js("document.querySelector('.column[data-setting=\"focus\"] .seg[data-seg=\"5\"] .seglabel').click()")  # open Document 4
        await idle()
        seen["after"] = await js(tokens)
        seen["bars"] = await js("[...document.querySelectorAll('.column[data-setting=\"focus\"] .bar')].map(b => +b.dataset.sum)")
        return seen

    seen = run_in_chromium(path, script)
    import json

    assert seen["segments"] == len(segs) == 63 and [(s["name"]) for s in segs[:2]] == ["sink", "instruction"]
    shown, sums = attention_of(data, 0, "focus")[1, 2], segment_sums(data, 0, "focus")[1, 2]
    open_before = [j for j, g in enumerate(segs) if g["part"] in ("relevant", "question")]
    expect = [i for j in open_before for i in range(segs[j]["start"], segs[j]["end"])]
    before, after = json.loads(seen["before"]), json.loads(seen["after"])
    assert [i for i, _ in before] == expect  # only the relevant document and the question, of 8,192 tokens
    added = sorted(set(i for i, _ in after) - set(expect))
    assert added == list(range(segs[5]["start"], segs[5]["end"]))  # the segment clicked, whole
    np.testing.assert_allclose([w for _, w in after], shown[[i for i, _ in after]], atol=1e-6)
    np.testing.assert_allclose(seen["bars"], [sums[j] for j, g in enumerate(segs) if g["name"].startswith("Document")], atol=1e-6)
