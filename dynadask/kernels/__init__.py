"""Pure numerical kernels on one block: numpy, scipy and numba only (no dask, AnnData or IO)."""
