"""Tools: neighbours, moments, kinetics, embeddings and cell-wise velocities."""
