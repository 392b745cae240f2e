"""The project's exception hierarchy; the CLIs catch exactly these and exit 2."""

from __future__ import annotations


class SynthguardError(Exception):
    """Base class: an error a user can fix, reported without a traceback."""


class ParamsError(SynthguardError):
    """A value in params.yaml is unknown, missing, of the wrong type or out of range."""


class PipelineInputError(SynthguardError):
    """An input file or URL is missing, unreachable, empty, truncated or too dirty."""


class SchemaError(SynthguardError):
    """A table lacks a required column or holds a column of the wrong type."""


class PrivacyBudgetError(SynthguardError):
    """A privacy budget cannot be met with the given settings."""
