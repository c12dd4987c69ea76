"""Exact theory of the Toy Model of Superposition (SPEC 1, 2 and 5).

Knows nothing of PyMC or samplers: closed-form potential and its derivatives, k-gon critical points
and their catalogue, learning coefficients where theory gives them, free energies, theoretical
occupancy curves and crossovers, and the one-dimensional K(w) examples.
"""

from .critical_points import (
    CriticalPoint,
    catalogue_phase_names,
    critical_points,
    kgon,
    metastable_exit,
    optimal_radius_bias,
    parse_phase,
    phase_name,
)
from .free_energy import (
    TRUSTED_FROM,
    crossover,
    crossover_steps,
    crossovers,
    free_energy,
    phase_free_energies,
    theoretical_occupancy,
    winner_changes,
)
from .laplace import (
    constant_steps,
    dataset_free_energies,
    flat_region_mass,
    label_copies,
    laplace_terms,
    n_effective,
)
from .regions import column_roles, in_phase_xp
from .one_dim import (
    first_order_crossover,
    first_order_example,
    free_energy_curves,
    local_free_energy,
    merge_curves,
    merge_example,
    two_singularities,
)
from .potential import (
    empirical_loss,
    empirical_loss_jax,
    pack,
    potential,
    potential_grad,
    potential_hessian,
    potential_jax,
    unpack,
)

__all__ = [
    "CriticalPoint",
    "catalogue_phase_names",
    "critical_points",
    "TRUSTED_FROM",
    "column_roles",
    "crossover",
    "crossovers",
    "crossover_steps",
    "constant_steps",
    "dataset_free_energies",
    "flat_region_mass",
    "in_phase_xp",
    "label_copies",
    "laplace_terms",
    "n_effective",
    "empirical_loss",
    "empirical_loss_jax",
    "first_order_crossover",
    "first_order_example",
    "free_energy",
    "free_energy_curves",
    "kgon",
    "local_free_energy",
    "metastable_exit",
    "merge_curves",
    "merge_example",
    "optimal_radius_bias",
    "pack",
    "parse_phase",
    "phase_free_energies",
    "phase_name",
    "potential",
    "potential_grad",
    "potential_hessian",
    "potential_jax",
    "theoretical_occupancy",
    "two_singularities",
    "unpack",
    "winner_changes",
]
