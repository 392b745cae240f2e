"""The synthesize stage: SDV for the structured columns, a DP-fine-tuned LM for the text."""

from stages.synthesize.core import GenerationError, SynthesizeResult, run_synthesize
from stages.synthesize.params import SynthesizeParams

__all__ = ["GenerationError", "SynthesizeParams", "SynthesizeResult", "run_synthesize"]
