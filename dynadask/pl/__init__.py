"""Plotting: figures from results already in the AnnData."""
