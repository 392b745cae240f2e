"""The HTML template that makes `dvc plots show` / `dvc plots diff` pages draw offline.

DVC's own page loads vega, vega-lite and vega-embed from a CDN, so on a machine without
internet every data plot stays blank. This template carries the three libraries inline,
taken from the npm packages pinned in vendor/vega/package-lock.json (installed by `make
install`), and has no `{scripts}` placeholder, so DVC's CDN tags are never inserted. The
page it yields is self-contained: it opens from disk, mailed or copied, with no network.
.dvc/config points `plots.html_template` at the file this writes.

    python -m stages.plots_template [--node-modules vendor/vega/node_modules] [--output vendor/vega/offline.html]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from stages._cli import run_cli
from stages.errors import PipelineInputError
from stages.io import atomic_path

NODE_MODULES = Path("vendor/vega/node_modules")
OUTPUT = Path("vendor/vega/offline.html")
# (npm package, its browser build); the order is the load order: vega-embed needs the other two.
LIBRARIES = (("vega", "build/vega.min.js"), ("vega-lite", "build/vega-lite.min.js"),
             ("vega-embed", "build/vega-embed.min.js"))

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot (offline)</title>
    <!-- {versions}: inlined by `python -m stages.plots_template`, no network needed -->
@@LIBRARIES@@
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def render_template(node_modules: Path) -> str:
    """The template text with each library's build inlined; names a missing package and the fix."""
    scripts, versions = [], []
    for package, build in LIBRARIES:
        path = node_modules / package / build
        if not path.is_file():
            raise PipelineInputError(
                f"{path} does not exist: the offline plot libraries are not installed; "
                "run `make install` (it runs `npm ci` in vendor/vega)."
            )
        version = json.loads((node_modules / package / "package.json").read_text(encoding="utf-8"))["version"]
        versions.append(f"{package} {version}")
        # "</script" inside the code would end the element early; "<\/script" is the same
        # text in every JavaScript string, template or regular expression.
        code = path.read_text(encoding="utf-8").replace("</script", "<\\/script")
        scripts.append(f'    <script type="text/javascript" data-library="{package}@{version}">\n{code}\n    </script>')
    return PAGE.replace("{versions}", ", ".join(versions)).replace("@@LIBRARIES@@", "\n".join(scripts))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.plots_template", description=__doc__.split("\n\n")[0])
    parser.add_argument("--node-modules", type=Path, default=NODE_MODULES, help="default: %(default)s")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="default: %(default)s")
    args = parser.parse_args(argv)
    page = render_template(args.node_modules)
    with atomic_path(args.output) as tmp:
        tmp.write_text(page, encoding="utf-8")
    print(f"plots_template: {args.output} ({len(page) // 1024} KiB, vega libraries inline)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
