"""The anonymize stage: PII removal from the free text and the structured columns, measured on a labelled benchmark."""

from stages.anonymize.core import AnonymizeResult, run_anonymize
from stages.anonymize.params import AnonymizeParams

__all__ = ["AnonymizeParams", "AnonymizeResult", "run_anonymize"]
