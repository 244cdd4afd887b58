"""Preprocessing: filters, size factors, normalisation, feature genes and PCA."""
