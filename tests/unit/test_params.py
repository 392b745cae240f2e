"""Strict params loading: every problem names the key, the value and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from stages.errors import ParamsError
from stages.evaluate import EvaluateParams
from stages.extract import ExtractParams
from stages.params import as_flat_dict, load_section, parse_section
from stages.synthesize import SynthesizeParams

ROOT = Path(__file__).resolve().parents[2]
VALID = {
    "reviews": "reviews.jsonl.gz",
    "meta": None,
    "max_rows": 100,
    "chunk_rows": 1000,
    "min_text_chars": 10,
    "categories": [],
    "max_reject_rate": 0.05,
    "split": {"train": 0.8, "val": 0.1, "test": 0.1},
}


def with_change(path: str, value) -> dict:
    raw = copy.deepcopy(VALID)
    *parents, leaf = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[leaf]
    else:
        node[leaf] = value
    return raw


def test_valid_section_builds_frozen_dataclass():
    params = parse_section(VALID, ExtractParams, "extract")
    assert params.split.train == 0.8 and params.categories == ()
    with pytest.raises(AttributeError):
        params.max_rows = 5  # frozen


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        # unknown key, with the allowed keys listed
        ("colour", "red", r"extract\.colour: unknown key; allowed keys are \["),
        # missing key
        ("min_text_chars", KeyError, r"extract\.min_text_chars: missing"),
        # wrong type: a string where an int belongs
        ("chunk_rows", "many", r"extract\.chunk_rows: expected int, got 'many'"),
        # bool is not an int
        ("max_rows", True, r"extract\.max_rows: expected int, got True"),
        # below the declared minimum
        ("chunk_rows", 5, r"extract\.chunk_rows: 5 is below the minimum 100"),
        # above the declared maximum
        ("max_reject_rate", 1.5, r"extract\.max_reject_rate: 1\.5 is above the maximum 1\.0"),
        # a list where a list of strings belongs, with a bad element
        ("categories", ["Books", 3], r"extract\.categories\[1\]: expected str, got 3"),
        # nested section: unknown key
        ("split.holdout", 0.1, r"extract\.split\.holdout: unknown key"),
        # cross-field check inside the nested section
        ("split.test", 0.3, r"extract\.split: train \+ val \+ test = 1\.2; the fractions must sum to 1"),
        # cross-field check between keys
        ("categories", ["Books"], r"extract\.categories: filtering on main_category needs the product metadata"),
    ],
)
def test_invalid_values_name_the_key(key, value, message):
    with pytest.raises(ParamsError, match=message):
        parse_section(with_change(key, value), ExtractParams, "extract")


def test_all_problems_are_reported_at_once():
    raw = with_change("chunk_rows", "x")
    raw["colour"] = "red"
    with pytest.raises(ParamsError) as info:
        parse_section(raw, ExtractParams, "extract")
    assert "extract.chunk_rows" in str(info.value) and "extract.colour" in str(info.value)


def test_null_allowed_only_for_optional_fields():
    assert parse_section(with_change("max_rows", None), ExtractParams, "extract").max_rows is None
    with pytest.raises(ParamsError, match=r"extract\.reviews: expected str, got None"):
        parse_section(with_change("reviews", None), ExtractParams, "extract")


def test_params_file_rejects_unknown_sections(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"seed": 1, "extract": VALID, "extrct": {}}))
    with pytest.raises(ParamsError, match=r"unknown top-level key\(s\) \['extrct'\]"):
        load_section(path, "extract", ExtractParams)


def test_seed_must_be_a_non_negative_int(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"seed": -1, "extract": VALID}))
    with pytest.raises(ParamsError, match=r"seed: -1 is below the minimum 0"):
        load_section(path, "extract", ExtractParams)


def test_project_params_file_loads():
    params, seed = load_section(ROOT / "params.yaml", "extract", ExtractParams)
    assert isinstance(seed, int) and params.reviews


def test_flat_dict_uses_dotted_keys():
    flat = as_flat_dict(parse_section(VALID, ExtractParams, "extract"), "extract")
    assert flat["extract.split.train"] == 0.8 and flat["extract.categories"] == []


@pytest.mark.parametrize("profile", ["params.yaml", "tests/params.quick.yaml"])
def test_synthesize_filter_drops_every_entity_the_gate_scans_for(profile):
    """A record the residual-PII gate would flag must already be dropped by synthesize."""
    synth, _ = load_section(ROOT / profile, "synthesize", SynthesizeParams)
    evaluate, _ = load_section(ROOT / profile, "evaluate", EvaluateParams)
    assert set(evaluate.privacy.pii_entities) <= set(synth.filters.pii_entities)
