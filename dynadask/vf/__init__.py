"""Vector-field reconstruction and the vector calculus evaluated on it."""
