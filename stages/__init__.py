"""synthguard: privacy-preserving synthetic review data, as a DVC + MLflow pipeline."""
