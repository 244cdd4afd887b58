"""The ``dynadask`` command: convert files to stores, describe stores, run the workflow."""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence
from pathlib import Path

from . import pipeline
from ._core.errors import DynadaskError
from .io import convert
from .io.info import format_info, store_info
from .parallel import client, set_progress
from .sample_data import pancreas_path


def _convert(args: argparse.Namespace) -> int:
    with client(args.scheduler) if args.scheduler else _local(args):
        path = convert(args.src, args.dst, chunk_cells=args.chunk_cells, overwrite=args.overwrite)
    print(format_info(store_info(path)))
    return 0


def _info(args: argparse.Namespace) -> int:
    print(format_info(store_info(args.store)))
    return 0


def _run(args: argparse.Namespace) -> int:
    pipeline.check_stages(args.stages)  # before a cluster starts
    src = Path(args.src) if args.src else pancreas_path()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / f"{src.stem}.zarr"
    with client(args.scheduler) if args.scheduler else _local(args):
        if not store.exists() or (args.force and args.stages is None):
            convert(src, store, chunk_cells=args.chunk_cells, overwrite=True)
            print(f"converted {src} -> {store}")
        pipeline.run(store, stages=args.stages, force=args.force, figures=out / "figures")
    print(format_info(store_info(store)))
    return 0


def _local(args: argparse.Namespace):
    kwargs = {"n_workers": args.workers} if args.workers else {}
    return client(**kwargs) if kwargs else client()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynadask", description="dynamo's RNA-velocity workflow, out of core on Dask."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="convert .h5ad/.loom/.zarr into a dynadask store")
    conv.add_argument("src")
    conv.add_argument("dst")
    conv.add_argument("--chunk-cells", type=int, default=None, help="cells per row chunk")
    conv.add_argument("--overwrite", action="store_true", help="replace an existing store")
    _cluster_args(conv)
    conv.set_defaults(func=_convert)
    run = sub.add_parser("run", help="run the standard workflow into a store (resumable)")
    run.add_argument("src", nargs="?", default=None, help="input file (default: bundled pancreas)")
    run.add_argument("--out", default="dynadask_run", help="output folder (store and figures)")
    run.add_argument("--chunk-cells", type=int, default=None, help="cells per row chunk")
    run.add_argument("--stages", nargs="*", default=None, help="run only these stages")
    run.add_argument(
        "--force",
        action="store_true",
        help="redo stages already complete (with no --stages: from a new store)",
    )
    _cluster_args(run)
    run.set_defaults(func=_run)
    info = sub.add_parser("info", help="shape, matrices, chunking and completed stages")
    info.add_argument("store")
    info.set_defaults(func=_info)
    return parser


def _cluster_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scheduler", default=None, help="Dask scheduler address (default: start a LocalCluster)"
    )
    parser.add_argument("--workers", type=int, default=None, help="LocalCluster worker processes")
    parser.add_argument("--progress", action="store_true", help="show progress bars")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dynadask`` command line.

    Parameters
    ----------
    argv
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status.
    """
    args = _parser().parse_args(argv)
    set_progress(getattr(args, "progress", False))
    try:
        return args.func(args)
    except (DynadaskError, FileNotFoundError, FileExistsError, KeyError, ValueError) as err:
        print(f"dynadask {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        print(
            f"dynadask {args.command}: error: no space left on the device ({err.filename or ''}"
            "): free space and run the command again; stages already complete are kept",
            file=sys.stderr,
        )
        return 2


def _one_line(err: BaseException) -> str:
    """The error's message on one line (KeyError's quotes removed)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(text.split()) or type(err).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
