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
from stages.anonymize.engine import Finding, ReviewAnalyzer
from stages.anonymize.passes import Failure, Replacer
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
def test_cli_on_a_single_file_leaves_the_pipeline_alone(tmp_path, monkeypatch, suffix):
    monkeypatch.setenv(ENV_VAR, KEY.decode())
    store = tmp_path / "store.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.chdir(tmp_path)  # a pipeline metrics file would land in ./metrics
    frame = _frame(TEXTS[:2] + TEXTS[5:])
    src, dst = tmp_path / f"in{suffix}", tmp_path / "out" / f"clean{suffix}"
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
    assert main(["--params", str(params), "--input", str(src), "--output", str(dst)]) == 0
    out = pd.read_parquet(dst) if suffix == ".parquet" else (pd.read_csv(dst) if suffix == ".csv" else pd.read_json(dst, lines=True))
    assert out["review_id"].tolist() == frame["review_id"].tolist()
    assert list(out.columns) == list(frame.columns)
    metrics = tmp_path / "out" / "clean.metrics.json"  # beside the output
    written = dst.read_bytes() + metrics.read_bytes()
    assert KEY not in written and b"Jane Doe" not in written and b"AUSER0000XYZ" not in written
    m = json.loads(metrics.read_text())
    assert m["detected_value_reoccurrences"] == 0 and m["quarantined_records"] == 0
    assert "leak_estimate" not in m  # no benchmark, no estimate (and no 0 that reads as "nothing leaked")
    assert not store.exists() and not (tmp_path / "metrics").exists()  # no MLflow run, no pipeline metrics
    assert not (tmp_path / "out" / "clean.quarantine.jsonl").exists()


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


# Name shapes that real reviewers' names take (issue 12): each must be replaced, none may stop the run.
SHAPED = [
    'Great charger. Thanks, J. R. "Bobby" Smith Jr.',  # initials, quoted nickname, suffix
    "maddy927 here. Works fine for me.",  # handle
    "This is MaddyJones. Love the cable.",  # camelCase
    "Solid and loud. - MARY ELLEN O. WATSON",  # ALL CAPS, four parts
    "vanel bernard here. Good cable, fast delivery.",  # lower case, two words
    "Nice case. Thanks, Sherri C.",  # first name and initial
    'Ok for the price. - Ana Maria "Nina" de la Cruz Jr.',  # five parts, particles, nickname, suffix
    "Thanks for the OEM part; I don't like the glass. Palm-sized.",  # everyday words that must stay
]
SHAPED_NAMES = ['J. R. "Bobby" Smith Jr.', "maddy927", "MaddyJones", "MARY ELLEN O. WATSON", "vanel bernard", "Sherri C.",
                'Ana Maria "Nina" de la Cruz Jr.']


def test_every_name_shape_is_replaced_and_everyday_words_stay(analyzer):
    params = _quick_params(benchmark=dataclasses.replace(_quick_params().benchmark, cases=0, person_cases=0))
    result = run_anonymize({"train": _frame(SHAPED)}, params, key=KEY, seed=1, analyzer=analyzer)
    out = result.frames["train"]["text"].tolist()
    for name in SHAPED_NAMES:
        assert not any(name in text for text in out), name
    assert out[-1] == SHAPED[-1]  # "Thanks", "OEM", "don't", "glass", "Palm" untouched
    assert out[0].startswith("Great charger. Thanks, ") and out[5].startswith("Nice case. Thanks, ")
    m = result.metrics
    assert m["quarantined_records"] == 0 and m["detected_value_reoccurrences"] == 0
    assert set(m["surrogate_fallbacks"]) == set(params.entities)


class _FailsOn(ReviewAnalyzer):
    """The real analyzer, made to raise on one text (the failure a parser bug would cause)."""

    marker = "Zq9 unparseable"

    def _finish(self, entry):
        if isinstance(entry[1], str) and self.marker in entry[1]:
            raise ValueError(f"cannot parse {entry[1]!r}")  # the message quotes the text
        return super()._finish(entry)


def test_a_record_the_analyzer_fails_on_is_quarantined_and_the_run_goes_on(analyzer):
    params = _quick_params(benchmark=dataclasses.replace(_quick_params().benchmark, cases=0, person_cases=0))
    failing = _FailsOn(entities=params.entities, score_threshold=params.score_threshold, batch_size=params.batch_size,
                       n_process=1, ner_chunk_chars=params.ner_chunk_chars, min_english_share=params.min_english_share,
                       nlp=analyzer.nlp)
    secret = f"My name is Jane Doe and {_FailsOn.marker}."
    frame = _frame([TEXTS[0], secret, TEXTS[6]])
    result = run_anonymize({"train": frame}, params, key=KEY, seed=1, analyzer=failing)
    out = result.frames["train"]
    assert out["review_id"].tolist() == ["r0", "r2"]  # the others are anonymized as usual
    assert "Jane Doe" not in out["text"].iloc[0] and out["text"].iloc[1] == TEXTS[6]
    aside = result.quarantine
    assert aside["review_id"].tolist() == ["r1"] and aside["text"].isna().all()
    assert aside[["quarantine_source", "quarantine_pass", "quarantine_error"]].values.tolist() == [["train", "detect", "ValueError"]]
    assert aside["user_id"].iloc[0].startswith("u_")  # structured columns anonymized too
    m = result.metrics
    assert m["quarantined_records"] == 1 and m["rows_written"] == 2 and m["splits"]["train"]["quarantined"] == 1
    assert m["texts_analysed"] == 2  # the batch was retried text by text: nothing counted twice, the failed one not at all
    dumped = aside.to_json() + json.dumps(m)
    assert "Jane Doe" not in dumped and _FailsOn.marker not in dumped


def test_a_failing_record_is_quarantined_from_its_own_split_only(analyzer):
    params = _quick_params(benchmark=dataclasses.replace(_quick_params().benchmark, cases=0, person_cases=0))
    failing = _FailsOn(entities=params.entities, score_threshold=params.score_threshold, batch_size=params.batch_size,
                       n_process=1, ner_chunk_chars=params.ner_chunk_chars, min_english_share=params.min_english_share,
                       nlp=analyzer.nlp)
    frames = {"train": _frame([TEXTS[0], TEXTS[6], f"Fine {_FailsOn.marker}."]), "val": _frame([TEXTS[6]])}
    result = run_anonymize(frames, params, key=KEY, seed=1, analyzer=failing)
    assert result.frames["train"]["review_id"].tolist() == ["r0", "r1"] and result.frames["val"]["review_id"].tolist() == ["r0"]
    assert result.quarantine[["review_id", "quarantine_source"]].values.tolist() == [["r2", "train"]]
    assert result.metrics["splits"]["val"]["quarantined"] == 0 and result.metrics["rows_written"] == 3


def test_a_replacement_that_fails_comes_back_as_a_failure():
    params = _quick_params()
    replacer = Replacer(params, key=KEY, identifying={"Jane Doe": "PERSON"}, sweep=True)
    done = replacer.replace_batch(
        ["Hi Jane Doe.", "Bob.", "Jane Doe again", None],
        [[Finding("PERSON", 3, 11, 0.9)], [Finding("PERSON", 0, 99, 0.9)], [], Failure("detect", "ValueError")],
    )
    assert "Jane Doe" not in done[0].text and done[0].swept == 0
    assert done[1] == Failure("replace", "InvalidParamError")  # a span past the text's end
    assert "Jane Doe" not in done[2].text and done[2].swept == 1  # the undetected repeat is swept
    assert done[3] == Failure("detect", "ValueError")


def test_score_labelled_scores_a_users_own_file(tmp_path, capsys):
    labelled = tmp_path / "mine.jsonl"
    rows = [
        {"text": "Thanks, maddy927", "pii": [{"entity": "PERSON", "value": "maddy927", "shape": "handle"}]},
        {"text": "Call me at 5551234567 about the Galaxy S21.", "pii": [{"entity": "PHONE_NUMBER", "start": 11, "end": 21}],
         "keep": [{"value": "Galaxy S21"}]},
    ]
    labelled.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    scores = tmp_path / "scores.json"
    params = str(ROOT / "tests" / "params.quick.yaml")
    assert main(["--params", params, "--score-labelled", str(labelled), "--metrics", str(scores)]) == 0
    m = json.loads(scores.read_text())
    assert m["recall_person"] == 1.0 and m["recall_person_handle"] == 1.0 and m["recall_phone_number"] == 1.0
    assert m["negatives_kept"] == 1.0 and m["cases"] == 2
    assert m["leak_estimate"] == {"benchmark_cases": 2, "pii_missed_share": 0.0, "person_cases": 1, "person_missed_share": 0.0,
                                  "phone_number_cases": 1, "phone_number_missed_share": 0.0}
    assert "maddy927" not in capsys.readouterr().out  # scores only
    labelled.write_text(json.dumps({"text": "hi", "pii": [{"entity": "PERSON", "value": "Bob"}]}) + "\n")
    with pytest.raises(PipelineInputError, match=r"mine.jsonl:1: value 'Bob' does not occur in the text"):
        main(["--params", params, "--score-labelled", str(labelled)])
