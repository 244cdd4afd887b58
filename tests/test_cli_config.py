"""``dynadask run --config job.toml``: the job file, its precedence and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynadask.cli import _parser, main, run_options
from dynadask.runconfig import RUN_OPTIONS, load_run_config

JOB = """
out = "results"
chunk-cells = 20000
stages = ["vectorfield", "figures"]
force = true
jacobian_genes = ["Pax4", "Arx"]
workers = 2
progress = false
"""


def _options(*argv: str):
    return run_options(_parser().parse_args(["run", *argv]))


def test_every_run_option_has_a_job_file_key():
    run = _parser()._subparsers._group_actions[0].choices["run"]
    dests = {a.dest for a in run._actions if a.dest not in ("help", "config")}
    assert dests == set(RUN_OPTIONS)


def test_job_file_then_command_line(tmp_path):
    job = tmp_path / "jobs" / "job.toml"
    job.parent.mkdir()
    job.write_text(JOB + 'src = "../data/x.h5ad"\n')
    opts = _options("--config", str(job))
    assert opts.out == str(tmp_path / "jobs" / "results")  # relative to the file
    assert opts.src == str(tmp_path / "data" / "x.h5ad")
    assert (opts.chunk_cells, opts.workers, opts.force, opts.progress) == (20000, 2, True, False)
    assert opts.stages == ["vectorfield", "figures"]
    assert opts.jacobian_genes == ["Pax4", "Arx"]
    assert opts.scheduler is None  # not in the file: the default
    # the command line wins, option by option; what it leaves out stays from the file
    opts = _options(
        "other.h5ad", "--config", str(job), "--chunk-cells", "500", "--no-force", "--progress",
        "--stages", "jacobian", "--out", "here",
    )  # fmt: skip
    assert (opts.src, opts.out, opts.chunk_cells) == ("other.h5ad", "here", 500)
    assert (opts.force, opts.progress, opts.stages) == (False, True, ["jacobian"])
    assert (opts.workers, opts.jacobian_genes) == (2, ["Pax4", "Arx"])
    # without a file: the defaults
    opts = _options()
    assert (opts.out, opts.force, opts.stages, opts.progress) == ("dynadask_run", False, None, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('out = "r"\nchunk_size = 5\nworkres = 2\n', "unknown key(s) ['chunk_size', 'workres']"),
        ("chunk-cells = 5\nchunk_cells = 6\n", "'chunk-cells' and 'chunk_cells' set the same"),
        ('workers = "2"\n', "workers = '2' must be an integer"),
        ("force = 1\n", "force = 1 must be true or false"),
        ("workers = true\n", "workers = True must be an integer"),
        ("chunk-cells = 0\n", "must be at least 1"),
        ('stages = "figures"\n', "must be a list of strings"),
        ("out = \n", "not valid TOML"),
    ],
)
def test_bad_job_files_are_named_errors(tmp_path, capsys, text, message):
    job = tmp_path / "job.toml"
    job.write_text(text)
    with pytest.raises(ValueError, match="job.toml") as err:
        load_run_config(job)
    assert message in str(err.value)
    # the command says the same on one line, exit status 2, before any work
    assert main(["run", "--config", str(job), "--out", str(tmp_path / "o")]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and not (tmp_path / "o").exists()


def test_missing_job_file_and_unknown_stage(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "no job file" in capsys.readouterr().err
    job = tmp_path / "job.toml"
    job.write_text('stages = ["vectorfeld"]\n')
    assert main(["run", "--config", str(job), "--out", str(tmp_path / "o")]) == 2
    assert "unknown stage(s) ['vectorfeld']" in capsys.readouterr().err


def test_example_job_file_is_valid():
    job = Path(__file__).parents[1] / "deploy" / "job.toml"
    opts = load_run_config(job)
    assert opts["chunk_cells"] == 20000 and opts["progress"] is False
    assert "Neurog3" in opts["jacobian_genes"]


def test_dynadask_log_reports_each_compute(monkeypatch, capfd):
    import logging

    import dask.array as da

    from dynadask._core.compute import compute

    package = logging.getLogger("dynadask")
    before = (list(package.handlers), package.level)
    monkeypatch.setenv("DYNADASK_LOG", "debug")
    try:
        assert main(["run", "--stages", "nope"]) == 2  # the level is set before the error
        assert main(["run", "--stages", "nope"]) == 2
        assert sum(getattr(h, "dynadask_cli", False) for h in package.handlers) == 1
        (total,) = compute(da.ones(10, chunks=5).sum(), desc="probe sum")
        assert total == 10
        err = capfd.readouterr().err
        assert "dynadask._core.compute DEBUG compute probe sum: " in err
    finally:
        package.handlers[:], _ = before
        package.setLevel(before[1])
    monkeypatch.setenv("DYNADASK_LOG", "loud")
    with pytest.raises(SystemExit, match="DYNADASK_LOG='loud' is not a logging level"):
        main(["info", "x"])
