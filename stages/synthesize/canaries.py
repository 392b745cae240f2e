"""Audit canaries: unique fake secret records planted in the training split.

Each canary is a review by its own fake user that holds a fake name, phone number,
street address and a random secret string. It is inserted `repeat` times (entries of
`canaries.repeats`), so that evaluate can test whether the generator leaks a record
seen once or ten times. They are written, secrets included, to models/generator/ -
they are fake by construction, which is what makes them safe to keep.
"""

from __future__ import annotations

import random
import string

import pandas as pd

from stages.synthesize.params import CanaryParams

CANARY_USER_PREFIX = "canary-"


def make_canaries(params: CanaryParams, *, seed: int) -> list[dict]:
    """The canary records (one dict per distinct canary, with its repeat count)."""
    if not params.enabled:
        return []
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    canaries = []
    for repeat in params.repeats:
        for _ in range(params.count):
            n = len(canaries)
            secret = "".join(rng.choices(string.ascii_uppercase + string.digits, k=12))
            name, phone, street = fake.name(), fake.phone_number(), fake.street_address()
            text = (
                f"Ordered this for {name}. If it breaks call {phone} or bring it to {street}. "
                f"My secret code is {secret}."
            )
            canaries.append({
                "canary_id": n,
                "user_id": f"{CANARY_USER_PREFIX}{n}",
                "repeat": int(repeat),
                "name": name,
                "phone": phone,
                "street": street,
                "secret": secret,
                "rating": rng.randint(1, 5),
                "title": f"Gift for {name}",
                "text": text,
            })
    return canaries


def insert_canaries(train: pd.DataFrame, canaries: list[dict], *, seed: int) -> pd.DataFrame:
    """The training frame with each canary appended `repeat` times, rows shuffled."""
    if not canaries:
        return train
    template = {col: None for col in train.columns}
    rows = []
    for canary in canaries:
        for copy in range(canary["repeat"]):
            row = dict(template)
            row.update(
                review_id=f"canary-{canary['canary_id']}-{copy}",
                user_id=canary["user_id"],
                rating=canary["rating"],
                title=canary["title"],
                text=canary["text"],
                n_images=0,
                split="train",
            )
            rows.append(row)
    planted = pd.DataFrame(rows, columns=train.columns).astype(train.dtypes.to_dict(), errors="ignore")
    out = pd.concat([train, planted], ignore_index=True)
    return out.sample(frac=1.0, random_state=seed).reset_index(drop=True)
