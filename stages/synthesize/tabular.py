"""The model of the structured columns: DP noisy marginals (dp_tabular.py) or a non-private SDV one.

`fit_tabular` dispatches: with `synthesize.dp.enabled` the DP marginal model, with the
text generator's privacy unit; without it SDV's GaussianCopula or CTGAN (no guarantee).
SDV metadata is written out rather than detected.

Modelled: rating (categorical, ordered 1..5), helpful_vote, verified_purchase,
timestamp, main_category, n_images, price, and the title and text lengths that
condition the text model. Product ids and titles are not modelled: a synthetic
record has no real product, so they stay null. A column that is null in every
training row is left out of the model and stays null too (a field the data does not
have is never invented).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from stages.schema import RATINGS
from stages.synthesize.params import DPParams, TabularParams

TABLE = "reviews"
# column -> SDV column metadata
COLUMNS = {
    "rating": {"sdtype": "categorical"},
    "helpful_vote": {"sdtype": "numerical"},
    "verified_purchase": {"sdtype": "boolean"},
    "timestamp": {"sdtype": "datetime"},
    "main_category": {"sdtype": "categorical"},
    "n_images": {"sdtype": "numerical"},
    "price": {"sdtype": "numerical"},
    "title_chars": {"sdtype": "numerical"},
    "text_chars": {"sdtype": "numerical"},
}


def tabular_frame(records: pd.DataFrame) -> pd.DataFrame:
    """The structured view of record-schema rows that SDV models (lengths derived, UTC made naive)."""
    out = pd.DataFrame(index=records.index)
    out["rating"] = records["rating"].astype(int)
    out["helpful_vote"] = records["helpful_vote"].astype("Int64")
    out["verified_purchase"] = records["verified_purchase"].astype("boolean")
    # rdt reads datetimes as nanoseconds whatever their unit: ms values would land in 1970.
    out["timestamp"] = (
        pd.to_datetime(records["timestamp"], utc=True).dt.tz_convert(None).dt.floor("s").astype("datetime64[ns]")
    )
    out["main_category"] = records["main_category"].astype(object)
    out["n_images"] = records["n_images"].astype("Int64")
    out["price"] = records["price"].astype("Float64")
    out["title_chars"] = records["title"].str.len().astype("Int64")
    out["text_chars"] = records["text"].str.len().astype("Int64")
    return out.reset_index(drop=True)


@dataclass
class TabularModel:
    """A fitted SDV synthesizer plus the columns it leaves null."""

    synthesizer: object
    modelled_: list[str]
    null_columns_: list[str] = field(default_factory=list)
    privacy_: dict = field(default_factory=lambda: {"mechanism": "none (SDV, non-private)"})

    def sample(self, n: int, *, seed: int) -> pd.DataFrame:
        """n structured rows; unmodelled columns are null."""
        import numpy as np

        # SDV samples from numpy's and torch's global RNGs; seed both, then restore them.
        state = np.random.get_state()
        try:
            np.random.seed(seed)
            self.synthesizer.reset_sampling()
            rows = self.synthesizer.sample(num_rows=n)[TABLE]
        finally:
            np.random.set_state(state)
        for col in self.null_columns_:
            rows[col] = pd.NA
        rows["rating"] = rows["rating"].astype(int)
        return rows[list(COLUMNS)].reset_index(drop=True)

    def save(self, path: Path) -> None:
        """Save the SDV synthesizer (a pickle file, SDV's own format)."""
        self.synthesizer.save(str(path))


def ordered_encoder(order):
    """An rdt UniformEncoder whose [0, 1] intervals follow `order`, not first appearance.

    UniformEncoder lays categories out in the order it first meets them, so rating 5
    could sit between 1 and 2 and the copula would see no monotone relation. rdt 2.0
    has no ordered variant; fitting on the values sorted by `order` gives one.
    """
    from rdt.transformers.categorical import UniformEncoder

    rank = {value: i for i, value in enumerate(order)}

    class OrderedUniformEncoder(UniformEncoder):
        def _fit(self, data):
            unknown = set(pd.unique(data.dropna())) - set(rank)
            if unknown:
                raise ValueError(f"values {sorted(unknown)} are not in the declared order {list(order)}")
            super()._fit(data.iloc[data.map(rank).argsort(kind="stable")])

    return OrderedUniformEncoder()


def metadata_dict(columns: list[str]) -> dict:
    """The SDV metadata, written out: SDV would detect rating as numerical and lose its order."""
    return {
        "METADATA_SPEC_VERSION": "V1",
        "tables": {TABLE: {"columns": {c: COLUMNS[c] for c in columns}}},
    }


def unit_bounded(frame: pd.DataFrame, dp: DPParams, seed: int) -> pd.DataFrame:
    """The rows the DP model measures: at unit user, each user's at most k (the text generator's privacy unit)."""
    from stages.synthesize.dp import bound_contributions

    if dp.unit != "user":
        return frame
    return frame.iloc[bound_contributions(frame["user_id"].astype(str).to_numpy(), dp.max_reviews_per_user, seed)]


def fit_tabular(frame: pd.DataFrame, params: TabularParams, *, dp: DPParams, seed: int):
    """The DP marginal model when dp.enabled (a DPTabularModel), else the configured SDV synthesizer.

    Both have `sample(n, seed=)`, `save(path)`, `modelled_`, `null_columns_` and `privacy_`.
    """
    if dp.enabled:
        from stages.synthesize.dp_tabular import fit_dp_tabular

        k = dp.max_reviews_per_user if dp.unit == "user" else 1
        return fit_dp_tabular(tabular_frame(unit_bounded(frame, dp, seed)), params.domain, epsilon=params.epsilon,
                              delta=params.delta, max_rows_per_unit=k, root_share=params.root_share,
                              length_share=params.length_share, prompt_prior=params.prompt_prior)
    return fit_sdv(frame, params, seed=seed)


def fit_sdv(frame: pd.DataFrame, params: TabularParams, *, seed: int) -> TabularModel:
    """Fit the configured (non-private) SDV synthesizer on the structured view of the training rows."""
    import numpy as np
    import torch
    from sdv.metadata import Metadata

    data = tabular_frame(frame)
    null_columns = [c for c in COLUMNS if data[c].isna().all()]
    modelled = [c for c in COLUMNS if c not in null_columns]
    data = data[modelled]
    metadata = Metadata.load_from_dict(metadata_dict(modelled))
    if params.synthesizer == "ctgan":
        from sdv.single_table import CTGANSynthesizer

        synth = CTGANSynthesizer(metadata, epochs=params.ctgan_epochs, enforce_min_max_values=True)
    else:
        from sdv.single_table import GaussianCopulaSynthesizer

        synth = GaussianCopulaSynthesizer(metadata, enforce_min_max_values=True, default_distribution="beta")
    synth.auto_assign_transformers({TABLE: data})
    synth.update_transformers({"rating": ordered_encoder(RATINGS)})
    state = np.random.get_state()
    with torch.random.fork_rng():
        np.random.seed(seed)
        torch.manual_seed(seed)
        synth.fit({TABLE: data})
    np.random.set_state(state)
    return TabularModel(synth, modelled, null_columns)
