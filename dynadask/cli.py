"""The ``dynadask`` command: convert files to stores, describe stores, run the workflow."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _convert(args: argparse.Namespace) -> int:
    from .io import convert
    from .io.info import format_info, store_info
    from .parallel import client

    with client(args.scheduler) if args.scheduler else _local(args):
        path = convert(args.src, args.dst, chunk_cells=args.chunk_cells, overwrite=args.overwrite)
    print(format_info(store_info(path)))
    return 0


def _info(args: argparse.Namespace) -> int:
    from .io.info import format_info, store_info

    print(format_info(store_info(args.store)))
    return 0


def _local(args: argparse.Namespace):
    from .parallel import client

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
    info = sub.add_parser("info", help="shape, matrices, chunking and completed stages")
    info.add_argument("store")
    info.set_defaults(func=_info)
    return parser


def _cluster_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scheduler", default=None, help="Dask scheduler address (default: start a LocalCluster)"
    )
    parser.add_argument("--workers", type=int, default=None, help="LocalCluster worker processes")


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
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"dynadask {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
