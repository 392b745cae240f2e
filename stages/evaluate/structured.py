"""Structured-column fidelity (SDMetrics reports) and the structured view the privacy metrics share."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from stages.synthesize.tabular import COLUMNS as SDV_COLUMNS
from stages.synthesize.tabular import tabular_frame

NUMERIC = ("rating", "helpful_vote", "n_images", "price", "title_chars", "text_chars", "timestamp")
CATEGORICAL = ("verified_purchase", "main_category")


def structured_view(records: pd.DataFrame) -> pd.DataFrame:
    """The structured columns of record-schema rows, as the synthesize stage models them."""
    return tabular_frame(records)


def informative_columns(real: pd.DataFrame) -> list[str]:
    """Columns with at least two distinct real values; constant or all-null ones say nothing."""
    return [c for c in real.columns if real[c].nunique(dropna=True) > 1]


def sdmetrics_reports(real: pd.DataFrame, synthetic: pd.DataFrame, *, correlation_threshold: float,
                      association_threshold: float) -> dict[str, float]:
    """SDMetrics QualityReport (column shapes, pair trends) and DiagnosticReport scores with explicit metadata."""
    with warnings.catch_warnings():  # the single-table reports are flagged deprecated but are the ones that fit
        warnings.simplefilter("ignore", FutureWarning)
        from sdmetrics.reports.single_table.diagnostic_report import DiagnosticReport
        from sdmetrics.reports.single_table.quality_report import QualityReport

    cols = informative_columns(real)
    metadata = {"columns": {c: {"sdtype": SDV_COLUMNS[c]["sdtype"]} for c in cols}}
    real, synthetic = real[cols].copy(), synthetic[cols].copy()
    quality = QualityReport()
    # With the default thresholds (0.5 / 0.3) pairs whose real association is weak are left out,
    # and with none left the pair-trends score is NaN; the params decide.
    quality.real_correlation_threshold = correlation_threshold
    quality.real_association_threshold = association_threshold
    diagnostic = DiagnosticReport()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quality.generate(real, synthetic, metadata, verbose=False)
        diagnostic.generate(real, synthetic, metadata, verbose=False)
    props = quality.get_properties().set_index("Property")["Score"]
    diag = diagnostic.get_properties().set_index("Property")["Score"]
    out = {
        "quality_score": float(quality.get_score()),
        "column_shapes": float(props["Column Shapes"]),
        "column_pair_trends": float(props["Column Pair Trends"]),
        "diagnostic_score": float(diagnostic.get_score()),
        "data_validity": float(diag.get("Data Validity", np.nan)),
        "data_structure": float(diag.get("Data Structure", np.nan)),
        "columns": len(cols),
    }
    shapes = quality.get_details("Column Shapes")
    for _, row in shapes.iterrows():
        out[f"shape.{row['Column']}"] = float(row["Score"])
    return out
