"""Operators, surrogate consistency, keys and the structured columns."""

from __future__ import annotations

import io
import re
import string

import pandas as pd
import pytest

from stages.anonymize.keys import ENV_VAR, load_key
from stages.anonymize.operators import OPERATORS, Surrogates, build_operators, luhn_valid
from stages.anonymize.params import StructuredParams
from stages.anonymize.structured import anonymize_structured, generalise_timestamps, pseudonymise_user_id
from stages.errors import ParamsError

KEY = b"k" * 32


def _op(name):
    return OPERATORS[name](key=KEY, surrogates=Surrogates(KEY), mask_char="*")


@pytest.mark.parametrize(
    "name, entity, value, check",
    [
        ("redact", "PERSON", "Jane Doe", lambda out: out == ""),
        ("tag", "EMAIL_ADDRESS", "a@b.com", lambda out: out == "<EMAIL_ADDRESS>"),
        ("mask", "PHONE_NUMBER", "555-123-4567", lambda out: out == "***-***-****"),  # separators kept
        ("hash", "PERSON", "Jane Doe", lambda out: re.fullmatch(r"[0-9a-f]{16}", out) is not None),
        ("replace", "CREDIT_CARD", "4111 1111 1111 1111", lambda out: luhn_valid(out) and re.fullmatch(r"4\d{3} \d{4} \d{4} \d{4}", out)),
        ("replace", "CREDIT_CARD", "378282246310005", lambda out: luhn_valid(out) and re.fullmatch(r"3\d{14}", out)),
        ("replace", "PHONE_NUMBER", "(555) 123-4567", lambda out: re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", out)),
        ("replace", "PHONE_NUMBER", "+44 20 7946 0958", lambda out: re.fullmatch(r"\+44 0?\d{1,2} \d{4} \d{4}", out)),
        ("replace", "ORDER_NUMBER", "112-3456789-1234567", lambda out: re.fullmatch(r"\d{3}-\d{7}-\d{7}", out)),
        ("replace", "EMAIL_ADDRESS", "jane@example.com", lambda out: re.fullmatch(r"[^@\s]+@[^@\s]+\.\w+", out)),
        ("replace", "IP_ADDRESS", "192.168.1.20", lambda out: re.fullmatch(r"\d+\.\d+\.\d+\.\d+", out)),
        ("replace", "URL", "https://www.facebook.com/jane.doe", lambda out: out.startswith("https://www.")),
        ("replace", "STREET_ADDRESS", "42 Maple Street", lambda out: re.match(r"\d+ ", out)),
        ("replace", "PERSON", "jane doe", lambda out: out.islower() and len(out.split()) == 2),  # case and shape kept
        ("replace", "PERSON", "J. Smith", lambda out: re.fullmatch(r"[A-Z]\. [A-Z][a-z'\- ]+", out)),
    ],
)
def test_operator_table(name, entity, value, check):
    out = _op(name)(entity, value)
    assert check(out), out
    assert value not in out or name == "mask"


def test_surrogates_are_consistent_keyed_and_reproducible():
    a, b = Surrogates(KEY), Surrogates(KEY)
    assert a.get("PERSON", "Jane Doe") == a.get("PERSON", "Jane Doe") == b.get("PERSON", "Jane Doe")
    assert a.get("PERSON", "Jane") == a.get("PERSON", "Jane Doe").split()[0]  # a recurring first name stays recognisable
    assert Surrogates(b"x" * 32).get("PERSON", "Jane Doe") != a.get("PERSON", "Jane Doe")


def test_surrogates_never_contain_a_detected_value():
    forbidden = {Surrogates(KEY).get("PERSON", f"name{i}") for i in range(40)}
    fresh = Surrogates(KEY, forbidden=forbidden)
    for i in range(40):
        out = fresh.get("PERSON", f"name{i}")
        assert out not in forbidden


def test_surrogate_search_always_ends_with_a_safe_value():
    # every Faker first and last name and every letter is "detected": no Faker draw can avoid them
    from faker.providers.person.en_US import Provider

    forbidden = set(Provider.first_names) | set(Provider.last_names) | set(string.ascii_uppercase) | {f"{c}." for c in string.ascii_uppercase}
    matcher = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, sorted(forbidden, key=len, reverse=True))) + r")(?!\w)")
    surrogates = Surrogates(KEY, forbidden=forbidden)
    values = ['J. R. "Bobby" Smith Jr.', "Sherri C.", "maddy927", "MARY ELLEN O. WATSON", "Ana Maria de la Cruz"]
    out = [surrogates.get("PERSON", v) for v in values]
    for value, new in zip(values, out):
        assert new != value and not matcher.search(new), (value, new)
    assert surrogates.fallbacks_["PERSON"] >= 1
    assert out == [Surrogates(KEY, forbidden=forbidden).get("PERSON", v) for v in values]  # still keyed and consistent
    assert re.fullmatch(r"Person-[0-9a-f]{6,}", surrogates.get("PERSON", "Smith")), "the keyed tag, last"


def test_unknown_operator_is_an_error():
    with pytest.raises(ParamsError, match=r"operators\.person: unknown operator 'shred'"):
        build_operators(lambda e: "shred", ["PERSON"], key=KEY, surrogates=Surrogates(KEY), mask_char="*")


def test_key_from_env_wins(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, "an-environment-key-0123456789")
    assert load_key(tmp_path / "k") == b"an-environment-key-0123456789"
    assert not (tmp_path / "k").exists()


def test_key_file_is_created_once_with_a_notice_that_hides_the_key(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    notice = io.StringIO()
    key = load_key(tmp_path / ".pseudonym_key", notice=notice)
    assert len(key) == 64
    assert "created a new pseudonymisation key" in notice.getvalue()
    assert key.decode() not in notice.getvalue()
    assert (tmp_path / ".pseudonym_key").stat().st_mode & 0o777 == 0o600
    again = io.StringIO()
    assert load_key(tmp_path / ".pseudonym_key", notice=again) == key and again.getvalue() == ""


def test_short_key_is_refused(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "short")
    with pytest.raises(ParamsError, match="shorter than 16 characters"):
        load_key()


@pytest.mark.parametrize(
    "granularity, expected",
    [
        ("day", "2023-05-17"),
        ("week", "2023-05-15"),  # the Monday of that week
        ("month", "2023-05-01"),
    ],
)
def test_timestamp_generalisation(granularity, expected):
    ts = pd.Series(pd.to_datetime(["2023-05-17T13:45:12.345Z", None], utc=True)).astype("datetime64[ms, UTC]")
    out = generalise_timestamps(ts, granularity)
    assert str(out.iloc[0].date()) == expected and out.iloc[0].hour == 0
    assert pd.isna(out.iloc[1])
    assert str(out.dtype) == "datetime64[ms, UTC]"


def test_structured_columns():
    frame = pd.DataFrame({"user_id": ["AB12", None], "helpful_vote": [3, 900], "price": [9.5, 1.0],
                          "timestamp": pd.to_datetime(["2023-05-17", "2023-05-18"], utc=True)})
    params = StructuredParams(user_id="hmac", timestamp_granularity="month", helpful_vote_cap=50, null_columns=("price",))
    out = anonymize_structured(frame, params, KEY)
    assert out["user_id"].iloc[0] == pseudonymise_user_id("AB12", KEY) and out["user_id"].iloc[0].startswith("u_")
    assert out["user_id"].iloc[1] is None
    assert out["helpful_vote"].tolist() == [3, 50]
    assert out["price"].isna().all()
    assert pseudonymise_user_id("AB12", b"y" * 32) != pseudonymise_user_id("AB12", KEY)


def test_dvc_experiment_copies_share_the_workspace_key_file(tmp_path, monkeypatch):
    from stages.anonymize.keys import default_key_file

    root = tmp_path / "repo"
    (root / ".dvc" / "tmp" / "exps" / "tmpabc").mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(root / ".dvc" / "tmp" / "exps" / "tmpabc")
    assert default_key_file() == root / ".pseudonym_key"
    monkeypatch.chdir(root)
    assert default_key_file() == root / ".pseudonym_key"
