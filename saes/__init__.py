"""Sparse autoencoders on attention-head outputs and their discrete codes (O'Neill & Bui 2024).

Works on tensors only (nothing here imports :mod:`circuits`): give it one vector per (prompt, head)
(``circuits.analysis.head_outputs`` collects them from a model), train sae-lens SAEs on a few of them
(:func:`train_head_saes`), turn every vector into a discrete code (:meth:`HeadSAEs.codes`: the argmax
latent), count the codes that only positive prompts show (:mod:`saes.counting`), and save or load
the SAEs in sae-lens's on-disk format (:meth:`HeadSAEs.save`, :meth:`HeadSAEs.load`).
"""

from saes.codebook import Codebook, CodebookConfig, CodeVector, code_purity, train_codebook
from saes.config import Architecture, SAEConfig, Sharing
from saes.counting import pair_endpoint_counts, unique_code_counts, unique_pair_counts
from saes.errors import SAEError
from saes.head_saes import MANIFEST, NO_CODE, HeadSAEs, argmax_codes
from saes.train import train_head_saes, train_sae

__all__ = [
    "MANIFEST",
    "NO_CODE",
    "Architecture",
    "CodeVector",
    "Codebook",
    "CodebookConfig",
    "HeadSAEs",
    "SAEConfig",
    "SAEError",
    "Sharing",
    "argmax_codes",
    "code_purity",
    "pair_endpoint_counts",
    "train_codebook",
    "train_head_saes",
    "train_sae",
    "unique_code_counts",
    "unique_pair_counts",
]
