"""Predictions made with a vector field: cell fates and trajectories."""

from .fate import fate as fate
from .fate_bias import fate_bias as fate_bias
from .state_graph import state_graph as state_graph
