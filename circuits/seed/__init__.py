"""Workflows from the seed papers, each built on the methods and interventions.

* :mod:`~circuits.seed.stages`: Merullo et al.'s stage-wise circuits (path patching from the logits).
* :mod:`~circuits.seed.retrieval`: retrieval heads (Wu et al. 2024), score and knockout.
* :mod:`~circuits.seed.refusal`: Ships on refusals (Zhou et al. 2025).
* :mod:`~circuits.seed.tune`: training-free attention tuning, ZeroTuning and ACT.
* :mod:`~circuits.seed.lofit`: LoFiT, localized fine-tuning of head outputs (Yin et al. 2024).

Pipeline: task → model → method → **workflow** (each has its ``headgraph`` command).
"""
