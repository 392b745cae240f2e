"""run_anonymize and the CLI on tiny hand-written frames, with the real Presidio and spaCy model."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from stages.anonymize.__main__ import main
from stages.anonymize.core import make_analyzer, run_anonymize
from stages.anonymize.keys import ENV_VAR
from stages.anonymize.params import AnonymizeParams
from stages.errors import ParamsError, PipelineInputError, SchemaError
from stages.params import parse_section
from stages.schema import RECORD_SCHEMA
from tests.conftest import ROOT

KEY = b"test-key-0123456789abcdef-XYZ"
TEXTS = [
    "Great case. My name is Jane Doe, order 112-3456789-1234567. Call me at (555) 123-4567!",
    "Email jane.doe@example.com or see https://www.facebook.com/jane.doe - Jane Doe",
    None,  # null text passes through
    "",  # empty text passes through
    "Ce produit est très bien, je le recommande à tous mes amis et à ma famille.",  # non-English
    "Card 4111 1111 1111 1111 was charged twice; I live at 42 Maple Street, Springfield.",
    "The Bose speaker pairs with my Galaxy S21 and the Echo Dot.",  # products stay
    "Jane Doe again: still works.",
]


def _quick_params(**changes) -> AnonymizeParams:
    raw = yaml.safe_load((ROOT / "tests" / "params.quick.yaml").read_text())["anonymize"]
    params = parse_section(raw, AnonymizeParams, "anonymize")
    return dataclasses.replace(params, **changes)


@pytest.fixture(scope="module")
def analyzer():
    return make_analyzer(_quick_params())


def _frame(texts=TEXTS) -> pd.DataFrame:
    n = len(texts)
    return pd.DataFrame(
        {
            "review_id": [f"r{i}" for i in range(n)],
            "user_id": [f"AUSER{i:04d}XYZ" for i in range(n)],
            "text": texts,
            "timestamp": pd.to_datetime(["2023-05-17T13:45:12Z"] * n, utc=True).astype("datetime64[ms, UTC]"),
            "extra_column": list(range(n)),  # unknown columns pass through
        }
    )


def test_run_anonymize_removes_pii_and_keeps_the_rest(analyzer):
    params = _quick_params(benchmark=dataclasses.replace(_quick_params().benchmark, cases=0))
    result = run_anonymize({"train": _frame()}, params, key=KEY, seed=1, analyzer=analyzer)
    out = result.frames["train"]
    text = "\n".join(t for t in out["text"] if t)
    for value in ("Jane Doe", "112-3456789-1234567", "(555) 123-4567", "jane.doe@example.com",
                  "facebook.com/jane.doe", "4111 1111 1111 1111", "42 Maple Street"):
        assert value not in text
    assert "Bose speaker pairs with my Galaxy S21 and the Echo Dot" in text
    assert out["text"].iloc[2] is None and out["text"].iloc[3] == ""
    assert out["text"].iloc[4] == TEXTS[4]
    assert out["extra_column"].tolist() == list(range(len(TEXTS)))
    assert out["review_id"].tolist() == [f"r{i}" for i in range(len(TEXTS))]
    # the same name gets the same surrogate in every review
    surrogate = out["text"].iloc[7].split(" again")[0]
    assert surrogate in out["text"].iloc[0] and surrogate in out["text"].iloc[1]
    assert all(u.startswith("u_") for u in out["user_id"])
    assert (out["timestamp"].dt.hour == 0).all()
    m = result.metrics
    assert m["detected_value_reoccurrences"] == 0
    assert m["texts_non_english"] == 1 and m["texts_empty"] == 2
    assert m["entities_found"]["ORDER_NUMBER"] == 1 and m["entities_found"]["CREDIT_CARD"] == 1
    assert m["records_touched"] == 4


def test_output_is_reproducible_for_a_key_and_the_key_never_appears(analyzer):
    params = _quick_params()
    frame = _frame()
    one = run_anonymize({"train": frame}, params, key=KEY, seed=3, analyzer=analyzer)
    two = run_anonymize({"train": frame}, params, key=KEY, seed=3, analyzer=analyzer)
    pd.testing.assert_frame_equal(one.frames["train"], two.frames["train"])
    dumped = one.frames["train"].to_json() + json.dumps(one.metrics)
    assert KEY.decode() not in dumped and KEY.hex() not in dumped
    other = run_anonymize({"train": frame}, params, key=b"another-key-0123456789", seed=3, analyzer=analyzer)
    assert other.frames["train"]["user_id"].iloc[0] != one.frames["train"]["user_id"].iloc[0]


def test_undetected_repeats_are_swept_and_counted(analyzer):
    # "Zorbatron" alone is not detected, but after the cue it is: the sweep removes both
    params = _quick_params(benchmark=dataclasses.replace(_quick_params().benchmark, cases=0))
    frame = _frame(["My name is Zorbatron Quilp.", "Zorbatron Quilp liked it."])
    result = run_anonymize({"train": frame}, params, key=KEY, seed=1, analyzer=analyzer)
    assert not any("Zorbatron" in t for t in result.frames["train"]["text"])
    assert result.metrics["detected_value_reoccurrences"] == 0
    off = run_anonymize({"train": frame}, dataclasses.replace(params, sweep_detected_values=False), key=KEY, seed=1,
                        analyzer=analyzer)
    assert off.metrics["sweep_replacements"] == 0


def test_long_text_is_chunked_not_truncated(analyzer):
    params = _quick_params(benchmark=dataclasses.replace(_quick_params().benchmark, cases=0))
    long = ("This cable is fine and works well. " * 120) + "Write to zed@example.org please."
    result = run_anonymize({"train": _frame([long])}, params, key=KEY, seed=1, analyzer=analyzer)
    out = result.frames["train"]["text"].iloc[0]
    assert "zed@example.org" not in out and out.startswith("This cable is fine") and "@" in out
    assert result.metrics["texts_chunked"] == 1


@pytest.mark.parametrize(
    "frame, message",
    [
        (pd.DataFrame({"body": ["x"]}), "no 'text' column"),
        (pd.DataFrame({"text": [1, 2]}), "column 'text' must hold strings or nulls; row 0 holds a int"),
        (pd.DataFrame({"text": ["a"], "user_id": [3.5]}), "column 'user_id' must hold strings"),
        (pd.DataFrame({"text": ["a"], "timestamp": ["not a time"]}), "column 'timestamp' must hold timestamps"),
    ],
)
def test_bad_input_names_the_column(frame, message, analyzer):
    with pytest.raises(SchemaError, match=message):
        run_anonymize({"in": frame}, _quick_params(), key=KEY, seed=1, analyzer=analyzer)


def test_entity_nothing_detects_is_an_error():
    raw = yaml.safe_load((ROOT / "tests" / "params.quick.yaml").read_text())["anonymize"]
    raw["entities"] = ["PERSON", "PASSPORT"]
    with pytest.raises(ParamsError, match=r"anonymize\.entities\[1\]: 'PASSPORT' is not allowed"):
        parse_section(raw, AnonymizeParams, "anonymize")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_cli_on_a_single_file(tmp_path, monkeypatch, suffix):
    monkeypatch.setenv(ENV_VAR, KEY.decode())
    frame = _frame(TEXTS[:2] + TEXTS[5:])
    src, dst = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    if suffix == ".jsonl":
        frame.to_json(src, orient="records", lines=True, date_format="iso")
    elif suffix == ".csv":
        frame.to_csv(src, index=False)
    else:
        frame.to_parquet(src)
    params = tmp_path / "params.yaml"
    quick = yaml.safe_load((ROOT / "tests" / "params.quick.yaml").read_text())
    quick["anonymize"]["benchmark"]["cases"] = 0
    params.write_text(yaml.safe_dump(quick))
    metrics = tmp_path / "m.json"
    assert main(["--no-mlflow", "--params", str(params), "--input", str(src), "--output", str(dst), "--metrics", str(metrics)]) == 0
    out = pd.read_parquet(dst) if suffix == ".parquet" else (pd.read_csv(dst) if suffix == ".csv" else pd.read_json(dst, lines=True))
    assert out["review_id"].tolist() == frame["review_id"].tolist()
    assert list(out.columns) == list(frame.columns)
    written = dst.read_bytes() + metrics.read_bytes()
    assert KEY not in written and b"Jane Doe" not in written and b"AUSER0000XYZ" not in written
    assert json.loads(metrics.read_text())["detected_value_reoccurrences"] == 0


def test_cli_splits_follow_the_record_schema(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, KEY.decode())
    in_dir, out_dir = tmp_path / "extracted", tmp_path / "anonymized"
    in_dir.mkdir()
    for i, split in enumerate(("train", "val", "test")):
        frame = _frame(TEXTS[i * 2 : i * 2 + 3]).drop(columns="extra_column")
        for column in RECORD_SCHEMA.names:
            if column not in frame:
                frame[column] = None
        frame["rating"], frame["n_images"], frame["split"] = 5, 0, split
        frame["text"] = frame["text"].fillna("")
        frame[RECORD_SCHEMA.names].to_parquet(in_dir / f"{split}.parquet")
    params = tmp_path / "params.yaml"
    quick = yaml.safe_load((ROOT / "tests" / "params.quick.yaml").read_text())
    quick["anonymize"]["benchmark"]["cases"] = 16
    quick["anonymize"]["benchmark"]["negative_cases"] = 4
    params.write_text(yaml.safe_dump(quick))
    metrics = tmp_path / "m.json"
    assert main(["--no-mlflow", "--params", str(params), "--in-dir", str(in_dir), "--out-dir", str(out_dir), "--metrics", str(metrics)]) == 0
    for split in ("train", "val", "test"):
        assert pq.read_schema(out_dir / f"{split}.parquet").remove_metadata() == RECORD_SCHEMA
    m = json.loads(metrics.read_text())
    assert m["detected_value_reoccurrences"] == 0 and "recall_person" in m["benchmark"]


def test_cli_input_without_output_is_an_error(tmp_path):
    with pytest.raises(PipelineInputError, match="--input and --output go together"):
        main(["--no-mlflow", "--input", str(tmp_path / "x.csv")])


def test_worker_processes_give_the_same_findings_in_order(analyzer):
    parallel = make_analyzer(dataclasses.replace(_quick_params(), n_process=2, batch_size=2), nlp=analyzer.nlp)
    texts = TEXTS * 3
    assert list(parallel.analyze(texts)) == list(analyzer.analyze(texts))
    assert parallel.stats_.texts == len(texts) and parallel.stats_.empty == 6
