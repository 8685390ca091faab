"""Every HTML page the toolkit writes draws offline: plotly.js comes from a file beside the pages
(lens_focus.plots), never a network. Checked by parsing the pages and, where a Chromium is
installed (.ci/run installs one), by loading them in headless Chromium with every host unresolvable."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import plotly.graph_objects as go
import pytest

from lens_focus.plots import PLOTLY_JS, plotlyjs_for, write_figure

REPO = Path(__file__).resolve().parents[1]
SCRIPT_SRC = re.compile(r'<script[^>]*\bsrc="([^"]+)"')


def browser_dom(page: Path) -> str:
    """The DOM of ``page`` after its scripts ran, in headless Chromium with no network."""
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("LENS_FOCUS_REQUIRE_BROWSER"):
            pytest.fail("LENS_FOCUS_REQUIRE_BROWSER is set but there is no chromium")
        pytest.skip("no chromium on this machine (.ci/run installs one)")
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND",
           "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


def test_committed_pages_load_plotly_from_the_repository():
    pages = sorted(p for p in (REPO / "figures").rglob("*.html") if ".previous" not in p.parts)  # set-aside runs are not committed
    runs = sorted((REPO / "figures").glob("*/plan.json"))
    assert len(runs) >= 3 and len(pages) >= 10 * len(runs)  # every committed run's pages (a head map, EM curve, compensation, sweep, ... each)
    for page in pages:
        text = page.read_text(encoding="utf-8")
        sources = SCRIPT_SRC.findall(text)
        assert sources or "Plotly.newPlot" not in text, page  # a plotly page loads plotly.js; the explorer holds all it runs
        for src in sources:
            assert "://" not in src and (page.parent / src).resolve().is_file(), (page, src)


def test_a_committed_figure_draws_offline():
    dom = browser_dom(REPO / "figures" / "toy" / "score" / "head_locations.html")
    assert dom.count('class="main-svg"') >= 1 and "heatmaplayer" in dom  # plotly drew the head map
    assert 'class="gtitle"' in dom and "Contextual heads of toy: relevant score" in dom


@pytest.mark.slow
def test_pages_of_one_run_share_one_plotly_js(tmp_path):
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]), layout=dict(title="two bars"))
    assert plotlyjs_for(tmp_path / "run") == PLOTLY_JS  # a run's folder gets the file once
    write_figure(fig, tmp_path / "run" / "score" / "bars")
    write_figure(fig, tmp_path / "run" / "sweep" / "deep" / "bars")
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.js")] == [f"run/{PLOTLY_JS}"]
    assert SCRIPT_SRC.findall((tmp_path / "run/sweep/deep/bars.html").read_text()) == [f"../../{PLOTLY_JS}"]
    write_figure(fig, tmp_path / "alone" / "bars")  # a page with none above gets its own
    assert (tmp_path / "alone" / PLOTLY_JS).is_file()
    dom = browser_dom(tmp_path / "run" / "sweep" / "deep" / "bars.html")
    assert "two bars" in dom and dom.count('class="point"') == 2
