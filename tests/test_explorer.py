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
from lens_focus.explorer import attention_of
from lens_focus.heads import Head
from lens_focus.interventions import compensation_intervention, focus_intervention
from lens_focus.scoring import span_sums

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
            run = data["examples"][i]["runs"][name]
            assert run["response"] == a.response and run["em"] == a.em
            stored = attention_of(data, i, name)  # (layer, head, prompt token)
            (apart,) = span_sums(toy, [a.sequence], intervention=make, progress=False)
            for doc in data["examples"][i]["documents"]:
                got = stored[:, :, doc["start"] : doc["end"]].sum(-1)
                np.testing.assert_allclose(got, apart[doc["name"]], atol=3e-3, err_msg=f"{name} example {i} {doc['name']}")
            np.testing.assert_allclose(stored[:, :, 0], apart["sink"], atol=2e-3)
    # the interventions change what the heads read: the page shows a difference
    assert not np.allclose(attention_of(data, 0, "baseline"), attention_of(data, 0, "focus"))


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
                    if expression != "window.explorerReady === true" or result.get("value"):
                        return result.get("value")
                    await asyncio.sleep(0.1)
                raise AssertionError("the page never became ready")

            async def shot():
                reply = await tab.send_command("Page.captureScreenshot", params={"format": "png"})
                return base64.b64decode(reply["result"]["data"])

            await js("window.explorerReady === true")
            return await script(js, shot)

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

    async def script(js, shot):
        seen = {"hash": await js("location.hash"), "columns": await js("document.querySelectorAll('.column').length")}
        await js("document.querySelector('.cell[data-head=\"5,2\"]').click()")  # a head on the map
        sel = "document.getElementById('example')"
        await js(f"{sel}.value = '3'; {sel}.dispatchEvent(new Event('change'))")  # an example
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
        for doc, total in bars[setting]:
            span = next(d for d in data["examples"][3]["documents"] if d["name"] == doc)
            assert total == pytest.approx(float(stored[span["start"] : span["end"]].astype(np.float64).sum()), abs=1e-6)
    assert png_colours(seen["png"]) > 50  # not blank
