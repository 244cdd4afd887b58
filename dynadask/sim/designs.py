"""Labelling designs: when each simulated cell is labelled, chased and harvested.

Every cell follows its trajectory from time 0 to a state time drawn uniformly in the time
span; it is then labelled for ``label_time`` (new RNA made in that window is labelled), then
chased (unlabelled synthesis again) for ``chase_time``, then harvested. The experiment types
use dynamo's names:

* ``conventional``: no label (spliced / unspliced only); ``time`` is the simulated time.
* ``one-shot``: one label duration; ``time`` is the label duration.
* ``kin``: several label durations, cells spread evenly over them; ``time`` as above.
* ``deg``: one pulse of ``pulse_time`` then several chase durations; ``time`` is the chase.
* ``mix_pulse_chase``: half the cells as ``kin`` (``label_time``), half as ``deg``
  (``pulse_time`` + ``chase_time``); ``obs['experiment']`` tells them apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from .._core.errors import InputError

EXPERIMENTS = ("conventional", "one-shot", "kin", "deg", "mix_pulse_chase")
ALIASES = {
    "one_shot": "one-shot", "oneshot": "one-shot", "kinetics": "kin", "kinetic": "kin",
    "degradation": "deg", "mix": "mix_pulse_chase", "pulse_chase": "mix_pulse_chase",
}  # fmt: skip
DEFAULT_LABEL_TIME = {"one-shot": (1.0,), "kin": (0.5, 1.0, 2.0, 4.0)}
DEFAULT_CHASE_TIME = (0.0, 1.0, 2.0, 4.0)
DEFAULT_PULSE_TIME = 10.0


def experiment_name(experiment_type: str) -> str:
    """Return dynamo's name of ``experiment_type`` or raise naming the known ones."""
    name = ALIASES.get(experiment_type, experiment_type)
    if name not in EXPERIMENTS:
        raise InputError(
            f"unknown experiment_type {experiment_type!r}: use one of {', '.join(EXPERIMENTS)}"
        )
    return name


def _times(value: float | Sequence[float] | None, default: Sequence[float], what: str):
    values = np.atleast_1d(np.asarray(default if value is None else value, dtype=np.float64))
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise InputError(f"{what} must be non-negative numbers, got {value!r}")
    return values


def _spread(values: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return values[rng.permutation(np.arange(n) % values.size)]


def _conventional(n, rng, label, chase, pulse):
    zero = np.zeros(n)
    return zero, zero.copy(), np.full(n, "conventional")


def _one_shot(n, rng, label, chase, pulse):
    if label.size != 1:
        raise InputError("a one-shot experiment has one label_time; use 'kin' for several")
    return np.full(n, label[0]), np.zeros(n), np.full(n, "pulse")


def _kin(n, rng, label, chase, pulse):
    return _spread(label, n, rng), np.zeros(n), np.full(n, "pulse")


def _deg(n, rng, label, chase, pulse):
    return np.full(n, pulse), _spread(chase, n, rng), np.full(n, "chase")


def _mix(n, rng, label, chase, pulse):
    is_chase = _spread(np.array([False, True]), n, rng)
    lab = np.where(is_chase, pulse, _spread(label, n, rng))
    cha = np.where(is_chase, _spread(chase, n, rng), 0.0)
    return lab, cha, np.where(is_chase, "chase", "pulse")


_DESIGNS: dict[str, Callable] = {
    "conventional": _conventional, "one-shot": _one_shot, "kin": _kin, "deg": _deg,
    "mix_pulse_chase": _mix,
}  # fmt: skip


def schedule(
    experiment_type: str,
    n_cells: int,
    t_span: tuple[float, float],
    *,
    label_time=None,
    chase_time=None,
    pulse_time=None,
    seed: int = 0,
) -> pd.DataFrame:
    """Return each cell's timing: state, label window, harvest, and dynamo's ``time``.

    Returns
    -------
    pandas.DataFrame
        Columns ``sim_time`` (harvest), ``state_time`` (label start), ``label_time``,
        ``chase_time``, ``time`` (what dynamo's ``tkey`` reads) and ``experiment``.
    """
    name = experiment_name(experiment_type)
    if not (np.isfinite(t_span[0]) and np.isfinite(t_span[1]) and 0 <= t_span[0] <= t_span[1]):
        raise InputError(f"t_span must be (start, end) with 0 <= start <= end, got {t_span}")
    label = _times(label_time, DEFAULT_LABEL_TIME.get(name, (1.0,)), "label_time")
    chase = _times(chase_time, DEFAULT_CHASE_TIME, "chase_time")
    pulse = float(_times(pulse_time, (DEFAULT_PULSE_TIME,), "pulse_time")[0])
    rng = np.random.default_rng([seed, 3])
    state = rng.uniform(t_span[0], t_span[1], n_cells)
    lab, cha, kind = _DESIGNS[name](n_cells, rng, label, chase, pulse)
    time = {"conventional": state, "deg": cha}.get(name, np.where(kind == "chase", cha, lab))
    return pd.DataFrame({
        "sim_time": state + lab + cha, "state_time": state, "label_time": lab,
        "chase_time": cha, "time": time, "experiment": pd.Categorical(kind),
    })  # fmt: skip
