"""Dask graph builders: turn the kernels into graphs over row-chunked arrays."""
