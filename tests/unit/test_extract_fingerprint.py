"""The fingerprint guard: what makes DVC rerun extract when a local source's bytes change."""

from __future__ import annotations

import dataclasses

from stages.extract.fingerprint import fingerprint_sources
from tests.unit.test_extract_core import make_params


def test_local_source_content_change_changes_the_fingerprint(tmp_path):
    source = tmp_path / "r.jsonl"
    source.write_text('{"a": 1}\n')
    params = make_params(reviews=str(source))
    before = fingerprint_sources(params)
    assert before["reviews"]["bytes"] == 9 and len(before["reviews"]["sha256"]) == 64 and before["meta"] is None
    source.write_text('{"a": 2}\n')  # same size, different bytes
    assert fingerprint_sources(params) != before


def test_urls_are_recorded_not_contacted():
    params = make_params(reviews="http://127.0.0.1:9/never-contacted.jsonl.gz")
    assert fingerprint_sources(params)["reviews"] == {"url": "http://127.0.0.1:9/never-contacted.jsonl.gz"}


def test_missing_local_source_is_recorded_for_extract_to_report(tmp_path):
    params = dataclasses.replace(make_params(), meta=str(tmp_path / "gone.jsonl"))
    assert fingerprint_sources(params)["meta"] == {"path": str(tmp_path / "gone.jsonl"), "missing": True}
