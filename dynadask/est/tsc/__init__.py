"""Estimators for time-resolved (metabolic-labelling) single-cell RNA-seq."""
