"""Store I/O and moments per block, in CPU seconds of one process (issue 17).

python -m benchmarks.store_io STORE [--block 2]

STORE is a store after the ``moments`` stage (``layers/M_s``, ``X_spliced``, ``X_unspliced``,
``obsp/moments_con``). Prints, each in CPU seconds (user + sys of this process, all threads),
so that the figures hold on a loaded machine:

- encode / decode throughput of four dense result chunks of ``M_s``, ``M_uu`` and
  ``velocity_S`` (when present) with zstd levels 3 (zarr's default) and 1, blosc-lz4 with
  byte shuffle, and the all-zero check zarr makes before writing each chunk;
- reading one layer's CSR row blocks through anndata's lazy reader and straight with zarr;
- the five moments of one row block from the sparse source blocks (the numba kernel) and
  from rows gathered step by step (scipy's sparse product, the former kernel), with the
  largest difference between them.
"""

from __future__ import annotations

import argparse
import resource
import warnings

import numcodecs
import numpy as np
import zarr
from anndata.experimental import read_elem_lazy
from scipy import sparse

import dynadask as dyn
from dynadask.graph import neighbourhood as nb
from dynadask.graph.blocks import row_sources
from dynadask.kernels import moments as km
from dynadask.tl.moments import moment_jobs


def cpu() -> float:
    """User + sys seconds of this process (all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def codecs(root: zarr.Group) -> None:
    """Encode / decode MB per CPU second of dense result chunks, per codec."""
    numcodecs.blosc.use_threads = False
    choices = {
        "zstd level 3 (zarr default)": numcodecs.Zstd(level=3),
        "zstd level 1 (dynadask)": numcodecs.Zstd(level=1),
        "blosc lz4 + shuffle": numcodecs.Blosc("lz4", 5, shuffle=numcodecs.Blosc.SHUFFLE),
    }
    for key in ("layers/M_s", "layers/M_uu", "layers/velocity_S"):
        if key not in root:
            continue
        arr = root[key]
        rows = min(arr.shape[0], 4 * arr.chunks[0])
        raw = np.ascontiguousarray(arr[:rows]).tobytes()
        for name, codec in choices.items():
            c0 = cpu()
            enc = codec.encode(raw)
            c1 = cpu()
            codec.decode(enc)
            c2 = cpu()
            print(
                f"{key:18s} {name:28s} size {len(enc) / len(raw):.3f}  "
                f"encode {len(raw) / max(c1 - c0, 1e-9) / 1e6:6.0f} MB/s  "
                f"decode {len(raw) / max(c2 - c1, 1e-9) / 1e6:6.0f} MB/s"
            )
        x = np.frombuffer(raw, dtype=arr.dtype)
        c0 = cpu()
        for _ in range(5):
            np.all(x == 0)
        print(f"{key:18s} all-zero check {5 * len(raw) / max(cpu() - c0, 1e-9) / 1e6:6.0f} MB/s")


def sparse_reads(root: zarr.Group, key: str, rows: int) -> None:
    """CPU seconds to read every row block of a CSR layer, two ways."""
    g = root[key]
    n, width = g.attrs["shape"]

    def through_anndata() -> None:
        x = read_elem_lazy(g, chunks=(rows, -1))
        for b in x.to_delayed().ravel():
            b.compute(scheduler="synchronous")

    def straight() -> None:
        ptr_a, ind_a, dat_a = g["indptr"], g["indices"], g["data"]
        for s in range(0, n, rows):
            e = min(n, s + rows)
            ptr = ptr_a[s : e + 1]
            lo, hi = int(ptr[0]), int(ptr[-1])
            sparse.csr_matrix((dat_a[lo:hi], ind_a[lo:hi], ptr - lo), shape=(e - s, width))

    for fn in (through_anndata, straight):
        c0 = cpu()
        fn()
        print(f"read {key} ({n} rows) {fn.__name__:16s} cpu {cpu() - c0:5.2f} s")


def moments_block(adata, block: int) -> None:
    """The five moments of one row block: from sparse blocks and from gathered rows."""
    w = sparse.csr_matrix(adata.obsp["moments_con"].compute(scheduler="synchronous"))
    names = ["X_spliced", "X_unspliced"]
    plan = nb.plan_blocks(w, adata.layers[names[0]].chunks[0])[block]
    local = nb.local_graph(w, plan)
    src = {}
    for name in names:
        positions, blocks = row_sources(adata.layers[name], plan.cells)
        src[name] = (positions, [b.compute(scheduler="synchronous") for b in blocks])
    print(f"block {block}: {plan.stop - plan.start} rows use {plan.cells.size} cells")
    total = {"blocks": 0.0, "gathered": 0.0}
    km.smooth(local[:10], km.Pieces(src[names[0]][1], src[names[0]][0]))  # numba compiled
    for out, (a, b) in moment_jobs(names).items():
        x = km.Pieces(src[a][1], src[a][0])
        y = None if b is None else km.Pieces(src[b][1], src[b][0])
        c0 = cpu()
        new = km.smooth(local, x, y)
        c1 = cpu()
        old = km._smooth_gathered(local, x, y, None, x.shape[1], 2048)
        c2 = cpu()
        total["blocks"] += c1 - c0
        total["gathered"] += c2 - c1
        print(
            f"{out:5s} from blocks {c1 - c0:5.2f} s  gathering step by step {c2 - c1:5.2f} s  "
            f"max |diff| {np.abs(new - old).max():.3g}"
        )
    print(
        f"all five: from blocks {total['blocks']:.2f} s, gathering step by step "
        f"{total['gathered']:.2f} s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--block", type=int, default=0, help="row block for the moments")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    root = zarr.open_group(args.store, mode="r")
    adata = dyn.io.open(args.store)
    codecs(root)
    sparse_reads(root, "layers/spliced", int(adata.layers["spliced"].chunks[0][0]))
    moments_block(adata, args.block)


if __name__ == "__main__":
    main()
