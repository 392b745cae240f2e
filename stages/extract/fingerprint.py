"""CLI: python -m stages.extract.fingerprint — record what the extract sources are now.

DVC cannot take an optional or URL dependency from params offline, so this always-run
step writes data/sources.json: the SHA-256 and size of each local source, and the
address of each URL source (not contacted here). `extract` depends on that file, so it
reruns exactly when a local source's bytes or a source param change.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from stages._cli import run_cli, stage_parser
from stages.extract.params import ExtractParams
from stages.extract.sources import is_url
from stages.io import file_sha256, write_json
from stages.params import load_section


def fingerprint_sources(params: ExtractParams) -> dict:
    """A content fingerprint of each configured source; a missing local file is recorded as such."""
    prints = {}
    for name, source in (("reviews", params.reviews), ("meta", params.meta)):
        if source is None:
            prints[name] = None
        elif is_url(source):
            prints[name] = {"url": source}
        elif Path(source).is_file():
            prints[name] = {"path": source, "bytes": Path(source).stat().st_size, "sha256": file_sha256(source)}
        else:
            prints[name] = {"path": source, "missing": True}  # extract itself reports the error
    return prints


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser("extract.fingerprint", __doc__.split("\n\n", 1)[1])
    parser.add_argument("--output", type=Path, default=Path("data/sources.json"), help="default: %(default)s")
    args = parser.parse_args(argv)
    params, _ = load_section(args.params, "extract", ExtractParams)
    write_json(args.output, fingerprint_sources(params))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
