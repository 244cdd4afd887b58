"""The ``dynadask`` command: convert files to stores, describe stores, run the workflow."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import pipeline
from ._core.errors import DynadaskError
from .io import convert
from .io.format import check_store
from .io.info import format_info, store_info
from .io.location import Remote, is_url, location
from .parallel import client, set_progress
from .runconfig import RUN_OPTIONS, load_run_config, run_defaults
from .sample_data import pancreas_path
from .summary import RUN, RunSummary


def _convert(args: argparse.Namespace) -> int:
    set_progress(_progress(args.progress))
    with client(args.scheduler) if args.scheduler else _local(args):
        path = convert(
            args.src,
            args.dst,
            chunk_cells=args.chunk_cells,
            overwrite=args.overwrite,
            storage_options=args.storage_options,
        )
    print(format_info(store_info(path)))
    return 0


def _info(args: argparse.Namespace) -> int:
    print(format_info(store_info(location(args.store, args.storage_options))))
    return 0


def run_options(args: argparse.Namespace) -> argparse.Namespace:
    """The options of a ``dynadask run``: defaults, then the job file, then the command line."""
    given = vars(args).copy()
    options = run_defaults()
    config = given.pop("config", None)
    if config is not None:
        options.update(load_run_config(config))
    options.update({k: v for k, v in given.items() if k in options})
    return argparse.Namespace(**options)


def run_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The options a ``dynadask run`` command line would use, job file included.

    Parameters
    ----------
    argv
        The arguments after ``dynadask run``.

    Returns
    -------
    argparse.Namespace
        Every option of :data:`dynadask.runconfig.RUN_OPTIONS`, as ``dynadask run`` would
        set it (for launchers that size a cluster from ``chunk_cells`` before the run).
    """
    return run_options(_parser().parse_args(["run", *argv]))


def _run(args: argparse.Namespace) -> int:
    opts = run_options(args)
    pipeline.check_stages(opts.stages)  # before a cluster starts
    set_progress(_progress(opts.progress))
    out = Path(opts.out)
    if is_url(opts.src):  # a store in an object store: the workflow runs in place
        store = location(opts.src, opts.storage_options)
        check_store(store)
    else:
        src = Path(opts.src) if opts.src else pancreas_path()
        store = out / f"{src.stem}.zarr"
    out.mkdir(parents=True, exist_ok=True)
    summary = RunSummary(store=store, figures=out / "figures")
    try:
        with client(opts.scheduler) if opts.scheduler else _local(opts):
            if isinstance(store, Path) and (
                not store.exists() or (opts.force and opts.stages is None)
            ):
                start = time.perf_counter()
                convert(src, store, chunk_cells=opts.chunk_cells, overwrite=True)
                summary.add("convert", RUN, time.perf_counter() - start)
                print(f"converted {src} -> {store}")
            pipeline.run(
                str(store) if isinstance(store, Remote) else store,
                stages=opts.stages,
                force=opts.force,
                figures=out / "figures",
                jacobian_genes=opts.jacobian_genes,
                summary=summary,
            )
        print(format_info(store_info(store)))
    finally:
        print(summary.format())
    return 0


def _progress(flag: bool | None) -> bool:
    """``--progress``/``--no-progress``, else on when the output is a terminal."""
    return sys.stdout.isatty() if flag is None else bool(flag)


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
    _storage_arg(conv)
    conv.set_defaults(func=_convert)
    # no defaults here: run_options tells what the command line set from what it left out
    run = sub.add_parser(
        "run",
        help="run the standard workflow into a store (resumable)",
        argument_default=argparse.SUPPRESS,
        epilog="Options not given come from --config, else from their defaults.",
    )
    o = RUN_OPTIONS
    run.add_argument("src", nargs="?", help=o["src"].help + "; or a store's URL (s3://…)")
    run.add_argument("--config", help="a TOML job file of these options (names without --)")
    run.add_argument("--out", help=o["out"].help)
    run.add_argument("--chunk-cells", type=int, help=o["chunk_cells"].help)
    run.add_argument("--stages", nargs="*", help=o["stages"].help)
    run.add_argument("--force", action=argparse.BooleanOptionalAction, help=o["force"].help)
    run.add_argument("--jacobian-genes", nargs="+", help=o["jacobian_genes"].help)
    run.add_argument("--scheduler", help=o["scheduler"].help)
    run.add_argument("--workers", type=int, help=o["workers"].help)
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, help=o["progress"].help)
    run.add_argument("--storage-options", help=o["storage_options"].help)
    run.set_defaults(func=_run)
    info = sub.add_parser("info", help="shape, matrices, chunking and completed stages")
    info.add_argument("store")
    _storage_arg(info)
    info.set_defaults(func=_info)
    return parser


def _storage_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage-options",
        default=None,
        help="fsspec options of an object-store URL as JSON, e.g. "
        '\'{"endpoint_url": "http://host:9000"}\' (default: AWS_ENDPOINT_URL, credential '
        "variables)",
    )


def _cluster_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scheduler", default=None, help="Dask scheduler address (default: start a LocalCluster)"
    )
    parser.add_argument("--workers", type=int, default=None, help="LocalCluster worker processes")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars (default: on when stdout is a terminal)",
    )


LOG_ENV = "DYNADASK_LOG"
"""Environment variable with a logging level for the command's messages (e.g. ``debug``:
each compute's label and wall time as well)."""


def _logging(level: str) -> None:
    """Send dynadask's log records at ``level`` and above to stderr, with the time."""
    if not level:
        return
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise SystemExit(f"dynadask: {LOG_ENV}={level!r} is not a logging level (debug, info, ...)")
    package = logging.getLogger("dynadask")
    if not any(getattr(h, "dynadask_cli", False) for h in package.handlers):
        # once, however often main runs in a process
        handler = logging.StreamHandler()  # the stderr of the first call
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        handler.dynadask_cli = True
        package.addHandler(handler)
    package.setLevel(number)


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
    _logging(os.environ.get(LOG_ENV, ""))
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
