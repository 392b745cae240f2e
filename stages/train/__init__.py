"""The train stage: LoRA rating classifiers and TF-IDF baselines per data source, scored on real test data."""

from stages.train.core import TrainResult, run_train
from stages.train.params import LoraParams, TfidfParams, TrainParams

__all__ = ["LoraParams", "TfidfParams", "TrainParams", "TrainResult", "run_train"]
