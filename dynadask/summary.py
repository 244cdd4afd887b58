"""What a workflow run did: each stage's outcome and wall time, where its outputs are."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .io.location import is_url

RUN, SKIPPED, FAILED = "run", "skipped", "failed"


@dataclass(frozen=True)
class StageOutcome:
    """One stage of a run: its name, ``status`` (``run``, ``skipped``, ``failed``), wall time."""

    name: str
    status: str
    seconds: float = 0.0


@dataclass
class RunSummary:
    """The record of one run of the workflow, filled in by :func:`dynadask.pipeline.run`.

    Attributes
    ----------
    store
        The store the stages ran on.
    figures
        The folder of the ``figures`` stage.
    outcomes
        One :class:`StageOutcome` per stage considered, in order (with ``convert`` first
        when the command line converted the input).
    """

    store: Path | None = None
    figures: Path | None = None
    outcomes: list[StageOutcome] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def add(self, name: str, status: str, seconds: float = 0.0) -> None:
        """Record the outcome of stage ``name``."""
        self.outcomes.append(StageOutcome(name, status, seconds))

    def names(self, status: str) -> list[str]:
        """The stages with outcome ``status``, in order."""
        return [o.name for o in self.outcomes if o.status == status]

    def format(self) -> str:
        """The summary as lines of text: a table of stages, the total, the output paths."""
        lines = ["summary", f"  {'stage':<22}{'status':<10}{'wall':>10}"]
        for o in self.outcomes:
            wall = f"{o.seconds:.1f} s" if o.status != SKIPPED else "-"
            lines.append(f"  {o.name:<22}{o.status:<10}{wall:>10}")
        total = time.perf_counter() - self.started
        counts = ", ".join(
            f"{len(self.names(s))} {s}" for s in (RUN, SKIPPED, FAILED) if self.names(s)
        )
        lines.append(f"  {'total':<32}{total:>8.1f} s  ({counts or 'no stages'})")
        if self.store is not None:
            store = self.store if is_url(str(self.store)) else Path(self.store).resolve()
            lines.append(f"  store    {store}")
        if self.figures is not None:
            folder = Path(self.figures).resolve()
            n = len(list(folder.glob("*.png"))) if folder.is_dir() else 0
            lines.append(f"  figures  {folder} ({n} png files)")
        return "\n".join(lines)
