"""Base model loading: clear errors, and the base found again from a DVC temp copy."""

from __future__ import annotations

import pytest

from stages.errors import PipelineInputError
from stages.synthesize.loading import load_base, resolve_base_model


@pytest.mark.parametrize(
    ("base_model", "message"),
    [
        # a GGUF path that is not there: say how to fetch it
        ("models/base/missing.gguf", r"does not exist; fetch it with `python -m stages.base_models`"),
        # a folder or hub id that cannot be loaded offline
        ("/nonexistent/model-dir", r"could not load the base model '/nonexistent/model-dir'"),
    ],
)
def test_unloadable_base_model_is_a_clear_error(base_model, message):
    with pytest.raises(PipelineInputError, match=message):
        load_base(base_model, seed=0)


def test_relative_base_model_resolves_through_a_dvc_temp_copy(tmp_path, monkeypatch):
    """`dvc exp run --queue` runs in .dvc/tmp/exps/..., which lacks the git-ignored models/base/."""
    (tmp_path / "models" / "base").mkdir(parents=True)
    gguf = tmp_path / "models" / "base" / "base.gguf"
    gguf.write_bytes(b"GGUF")
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "run" / "abc123"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    assert resolve_base_model("models/base/base.gguf") == str(gguf)
    # a path that exists nowhere, and a name that is no path, are left as given
    assert resolve_base_model("models/base/other.gguf") == "models/base/other.gguf"
    assert resolve_base_model("tiny-llama") == "tiny-llama"
