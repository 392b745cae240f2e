"""Names where reviewers sign (openers, sign-offs, dash asides) in every shape, and the words that must stay."""

from __future__ import annotations

import pytest

from stages.anonymize.passes import identifying_values
from stages.anonymize.signatures import find_signatures


def _found(text):
    return sorted({text[s:e] for s, e in find_signatures(text)})


@pytest.mark.parametrize(
    "text, names",
    [
        ("maddy927 here. Works great.", ["maddy927"]),  # a handle as an opener
        ("This is Jen K. Love it.", ["Jen K."]),  # "This is" + initial
        ("Hi all, this is alix couturier. I keep it plugged in.", ["alix couturier"]),  # lower case
        ("Works well. Thanks, vanel bernard", ["vanel bernard"]),  # sign-off, lower case
        ('Good case. - J. R. "Bobby" Smith Jr.', ['J. R. "Bobby" Smith Jr.']),  # initials, nickname, suffix
        ("Loud enough. -- MARY JO SMITH", ["MARY JO SMITH"]),  # ALL CAPS, three words
        ("Solid.\nJohnSmith", ["JohnSmith"]),  # camelCase handle on the last line
        ("Cheers,\nAlan_R", ["Alan_R"]),  # underscore handle after a line break
        ("My son derek142 agrees.", ["derek142"]),  # after a relation cue
        ("It works (thanks mar76) on my desk.", ["mar76"]),
        ("I was thinking - Hazel S - of returning it.", ["Hazel S"]),  # mid-text after a dash
        ("Hello! Kick L. van den Nuwenhijsen Sr. here: sturdy.", ["Kick L. van den Nuwenhijsen Sr."]),  # five parts
        ("This is rachael jonathan shepherd. Fits.", ["rachael jonathan shepherd"]),  # a surname that is a verb too
        ("Works well — daisy — and looks nice.", ["daisy"]),  # a first name that is a word, between dashes
        ("Fast service. Thank you Thanks C.W. Weaver!", ["C.W. Weaver"]),  # the sign-off words stay
        # what must stay: everyday words, brands and pronouns in the same frames
        ("Battery life - great - and cheap.", []),
        ("Nice. - Update: still works.", []),
        ("Thanks, Amazon!", []),
        ("This is great. It works.", []),
        ("Battery is fine - Works great", []),
        ("Thanks again!", []),
        ("I bought it and I got two.", []),
        ("Pros: light and cheap.", []),
        ("WiFi Range: medium", []),
        ("Love, Mom", []),
        ("It's small, making it great for travel.", []),
        ("This is Amazing!", []),
    ],
)
def test_signature_table(text, names):
    assert _found(text) == names


def test_only_identifying_values_are_swept():
    detected = {
        "Thanks": "PERSON", "OEM": "PERSON", "Don't": "PERSON", "Glass": "PERSON", "Like": "PERSON", "Palm": "PERSON",
        "hasn't": "PERSON", "J.": "PERSON", "S": "PERSON", "Jr.": "PERSON", "Alexa": "PERSON",  # not a person anywhere else
        "maddy927": "PERSON", "Jane Doe": "PERSON", "Felicia": "PERSON", "vanel bernard": "PERSON",  # a person anywhere
        "jane@example.com": "EMAIL_ADDRESS",
    }
    assert sorted(identifying_values(detected)) == ["Felicia", "Jane Doe", "jane@example.com", "maddy927", "vanel bernard"]
