"""Vector-field reconstruction and the vector calculus evaluated on it."""

from .calculus import acceleration as acceleration
from .calculus import curl as curl
from .calculus import curvature as curvature
from .calculus import divergence as divergence
from .calculus import speed as speed
from .calculus import torsion as torsion
from .cell_vectors import cell_accelerations as cell_accelerations
from .cell_vectors import cell_curvatures as cell_curvatures
from .fused import vector_calculus as vector_calculus
from .hessian import hessian as hessian
from .hessian import laplacian as laplacian
from .jacobian import jacobian as jacobian
from .jacobian import jacobian_array as jacobian_array
from .jacobian import sensitivity as sensitivity
from .potential import Potential as Potential
from .rank import rank_acceleration_genes as rank_acceleration_genes
from .rank import rank_curvature_genes as rank_curvature_genes
from .rank import rank_divergence_genes as rank_divergence_genes
from .rank import rank_genes as rank_genes
from .rank import rank_velocity_genes as rank_velocity_genes
from .rank_jacobian import rank_jacobian_genes as rank_jacobian_genes
from .sparsevfc import SparseVFC as SparseVFC
from .sparsevfc import vector_field_function as vector_field_function
from .topography import topography as topography
from .vector_field import VectorField as VectorField
