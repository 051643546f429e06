"""Metrics, reports, curves, comparisons, the baseline, the probe, cross-corpus
evaluation, the corpus check and the model-card writer."""
