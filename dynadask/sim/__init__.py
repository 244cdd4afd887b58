"""Simulations of splicing and metabolic-labelling experiments with known truth."""
