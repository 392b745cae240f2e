"""`dvc plots show` / `dvc plots diff` pages draw in headless Chromium with no network.

The pages come from the project's committed plot data and its .dvc/config, which names the
offline template (vega libraries inline, see stages/plots_template.py). Chromium resolves
no host but loopback, so a page that needed a CDN would stay blank; DVC's own template is
the control that shows the check can fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stages.plots_template import OUTPUT as TEMPLATE
from tests.chromium import dump_dom
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

# After the embeds have drawn: per vega canvas, its size and how many of its pixels are
# saturated colour. Axes, grid and text are grey, so only drawn data counts.
CHECK = """
<script>
setTimeout(function () {
  var out = [];
  document.querySelectorAll("canvas.marks").forEach(function (c) {
    var d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data, colored = 0;
    for (var i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 0 && Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 60) colored++;
    }
    out.push({id: c.closest("div[id]").id, width: c.width, height: c.height, colored: colored});
  });
  var pre = document.createElement("pre");
  pre.id = "plot-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 3000);
</script>
"""
PLOTS = ("evaluate_nn_similarity", "evaluate_rating_distribution", "evaluate_length_distribution",
         "evaluate_canary_exposure", "privacy_utility_frontier")


def _env() -> dict:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "DVC_NO_ANALYTICS": "1"}


@pytest.fixture(scope="module")
def template() -> Path:
    path = ROOT / TEMPLATE
    if not path.is_file():
        message = f"{TEMPLATE} is missing; `make install` builds it (npm ci in vendor/vega, then stages.plots_template)."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _drawn(page: Path) -> dict[str, dict]:
    """Render the page (with the check appended) and return the check's result per plot id."""
    checked = page.with_name("checked.html")
    head, body_end, tail = page.read_text(encoding="utf-8").rpartition("</body>")  # the inlined code has some too
    checked.write_text(head + CHECK + body_end + tail, encoding="utf-8")
    dom = dump_dom(checked.as_uri())
    found = re.search(r'<pre id="plot-check">(.*?)</pre>', dom, re.S)
    assert found, "the check never ran: the page's scripts failed"
    return {item["id"]: item for item in json.loads(found.group(1).replace("&quot;", '"'))}


def _plots(args: list[str], out: Path, *, cdn: bool = False) -> Path:
    done = subprocess.run(["dvc", "plots", *args, "-o", str(out)], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    page = out / "index.html"
    assert ("cdn.jsdelivr.net" in page.read_text(encoding="utf-8")) is cdn
    return page


def test_plots_show_draws_every_plot_offline(template, tmp_path):
    drawn = _drawn(_plots(["show"], tmp_path / "show"))  # .dvc/config names the template
    for plot in PLOTS:
        assert plot in drawn, f"{plot} has no canvas"
        assert drawn[plot]["width"] > 100 and drawn[plot]["height"] > 100, drawn[plot]
        assert drawn[plot]["colored"] > 20, f"{plot} drew no data: {drawn[plot]}"
    confusion = [k for k in drawn if "confusion" in k]
    assert len(confusion) == 6 and all(drawn[k]["colored"] > 100 for k in confusion)


def test_plots_diff_draws_offline_and_dvcs_own_page_does_not(template, tmp_path):
    drawn = _drawn(_plots(["diff", "HEAD", "--html-template", str(template)], tmp_path / "diff"))
    assert drawn["privacy_utility_frontier"]["colored"] > 20
    # The control: DVC's default page (vega from a CDN) draws nothing here.
    default = tmp_path / "default.html"
    from dvc_render.html import PAGE_HTML

    default.write_text(PAGE_HTML, encoding="utf-8")
    assert _drawn(_plots(["show", "--html-template", str(default)], tmp_path / "cdn", cdn=True)) == {}
