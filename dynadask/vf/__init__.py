"""Vector-field reconstruction and the vector calculus evaluated on it."""

from .calculus import acceleration as acceleration
from .calculus import curl as curl
from .calculus import curvature as curvature
from .calculus import divergence as divergence
from .calculus import speed as speed
from .sparsevfc import SparseVFC as SparseVFC
from .sparsevfc import vector_field_function as vector_field_function
from .topography import topography as topography
from .vector_field import VectorField as VectorField
