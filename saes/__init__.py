"""Sparse autoencoders on attention-head outputs and their discrete codes (O'Neill & Bui 2024).

Not built yet: this package is reserved for issue "Discrete SAE codes on head outputs" and exports
nothing so far.
"""

__all__: list[str] = []
