"""Estimators for conventional (splicing-only) single-cell RNA-seq."""
