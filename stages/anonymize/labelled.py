"""A user's own labelled PII file, read into benchmark cases (python -m stages.anonymize --score-labelled FILE)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from stages.anonymize.benchmark import Case
from stages.errors import PipelineInputError

LABELLED_FORMAT = """\
One JSON object per line:
  {"text": "Thanks, Jane Doe! Call 5551234567.",
   "pii": [{"entity": "PERSON", "value": "Jane Doe", "shape": "first_last"},
           {"entity": "PHONE_NUMBER", "start": 23, "end": 33}],
   "keep": [{"value": "Galaxy S21"}]}
text: required. pii: the values that must be found, each with an `entity` (one of the
stage's entities) and either `start`/`end` (character offsets, end exclusive) or `value`
(every occurrence in the text); `shape` and `position` (start/middle/end) are optional
labels scored separately. keep: optional spans or values that must stay (products, model
numbers)."""


def _spans(label: dict, text: str, where: str) -> list[tuple[int, int]]:
    if "value" in label:
        value = label["value"]
        if not isinstance(value, str) or not value or value not in text:
            raise PipelineInputError(f"{where}: value {value!r} does not occur in the text; give the exact substring")
        return [(m.start(), m.end()) for m in re.finditer(re.escape(value), text)]
    start, end = label.get("start"), label.get("end")
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
        raise PipelineInputError(f"{where}: needs `value`, or integer `start` < `end` within the text (length {len(text)})")
    return [(start, end)]


def load_labelled(path, entities: Sequence[str]) -> list[Case]:
    """Cases from a user's labelled JSONL (see LABELLED_FORMAT); errors name the line and the fix."""
    path = Path(path)
    if not path.is_file():
        raise PipelineInputError(f"{path}: no such labelled file; give a JSONL file.\n{LABELLED_FORMAT}")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PipelineInputError(f"{where}: not JSON ({exc.msg}).\n{LABELLED_FORMAT}") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise PipelineInputError(f"{where}: needs a string `text`.\n{LABELLED_FORMAT}")
        text, pii, keep = row["text"], [], []
        for label in row.get("pii", []):
            if not isinstance(label, dict) or label.get("entity") not in entities:
                raise PipelineInputError(f"{where}: each pii label needs an `entity` among {list(entities)}")
            for start, end in _spans(label, text, where):
                pii.append((label["entity"], start, end, str(label.get("position", "unlabelled")), str(label.get("shape", ""))))
        for label in row.get("keep", []):
            if not isinstance(label, dict):
                raise PipelineInputError(f"{where}: each keep label is an object with `value` or `start`/`end`")
            keep.extend(_spans(label, text, where))
        out.append(Case(text, tuple(pii), tuple(keep)))
    if not out:
        raise PipelineInputError(f"{path}: no labelled lines.\n{LABELLED_FORMAT}")
    return out
