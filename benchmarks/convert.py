"""Time conversion of an .h5ad file into a store (the .h5ad is exported from a store first).

python -m benchmarks.convert --from-store atlas_1M.zarr --h5ad atlas_1M.h5ad --out conv.zarr
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anndata as ad
import h5py
import zarr

import dynadask as dyn

from .common import MemoryMonitor, format_rows, machine, save


def export_h5ad(store: Path, h5ad: Path, step: int = 2**24) -> None:
    """Write a store's obs/var and CSR layers into an .h5ad file, streaming in ranges."""
    root = zarr.open_group(str(store), mode="r")
    with h5py.File(h5ad, "w") as f:
        f.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        ad.io.write_elem(f, "obs", ad.io.read_elem(root["obs"]))
        ad.io.write_elem(f, "var", ad.io.read_elem(root["var"]))
        f.create_group("layers").attrs.update(
            {"encoding-type": "dict", "encoding-version": "0.1.0"}
        )
        # dynamo reads X too: where the store has none, X is the spliced counts (as in pancreas)
        matrices = [(f"layers/{k}", root["layers"][k]) for k in root["layers"].keys()]
        x = root["X"] if "X" in root else root["layers"]["spliced"]
        for key, src in [("X", x), *matrices]:
            dst = f.create_group(key)
            dst.attrs.update(dict(src.attrs))
            for part in ("data", "indices", "indptr"):
                arr = src[part]
                out = dst.create_dataset(part, shape=arr.shape, dtype=arr.dtype, chunks=True)
                for start in range(0, arr.shape[0], step):
                    out[start : start + step] = arr[start : start + step]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-store", type=Path, required=True)
    parser.add_argument("--h5ad", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--chunk-cells", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/convert"))
    args = parser.parse_args(argv)
    print(machine())
    if not args.h5ad.exists():
        export_h5ad(args.from_store, args.h5ad)
    n = dyn.io.store_info(args.from_store)["n_obs"]
    rows: list = []
    kwargs = {"n_workers": args.workers} if args.workers else {}
    with dyn.parallel.client(**kwargs), MemoryMonitor() as mon:
        with mon.stage("convert h5ad->zarr", n, rows, note=str(args.h5ad)):
            dyn.io.convert(args.h5ad, args.out, chunk_cells=args.chunk_cells, overwrite=True)
    print(format_rows(rows))
    save(rows, args.results, {"h5ad": str(args.h5ad)})


if __name__ == "__main__":
    main()
