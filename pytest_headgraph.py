"""headgraph's pytest plugin (entry point ``pytest11: headgraph``): circuit regression in any test suite.

    def test_ioi_circuit_is_stable(circuit_regression):
        golden = circuit_regression.golden("ioi-smollm2-135m")
        circuit_regression.assert_matches(found_scores, golden, top_k=20, min_jaccard=0.8)

The fixture and assertion live in :mod:`circuits.measures.regression`. This module is deliberately tiny and
imports ``circuits`` only when a test asks for the fixture: pytest loads plugins before the
jaxtyping import hook (``--jaxtyping-packages``) is installed, and a package imported earlier could
not be type-checked. Disable with ``-p no:headgraph``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from circuits.measures.regression import CircuitRegression

__all__ = ["circuit_regression"]


@pytest.fixture
def circuit_regression() -> CircuitRegression:
    """Golden circuits and ``assert_matches(found, golden, top_k=20, min_jaccard=0.8)``."""
    from circuits.measures.regression import CircuitRegression

    return CircuitRegression()
