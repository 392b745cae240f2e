"""The evaluate stage: fidelity, privacy and utility of the synthetic data, and the privacy gate."""

from stages.evaluate.core import EvaluateInputs, EvaluateResult, run_evaluate
from stages.evaluate.params import EvaluateParams

__all__ = ["EvaluateInputs", "EvaluateParams", "EvaluateResult", "run_evaluate"]
