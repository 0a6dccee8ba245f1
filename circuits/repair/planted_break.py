"""The repair checked against ground truth: a planted IOI model broken on purpose.

The planted IOI model (:mod:`circuits.groundtruth.planted_ioi`) computes its answer through a
duplicate-token head, an S-inhibition head and a name mover, with exact weights. Its S-inhibition
head attends from the last position to S2, the position the duplicate-token head flags, and tells
the name mover which name to ignore. :func:`break_s_inhibition_` removes what that head's key reads
from the duplicate flag, so it falls back to attending to BOS: the mover no longer inhibits the
subject, spreads over IO, S1 and S2, and the logit difference drops from about ``+ALPHA`` to about
``−ALPHA/3``.

The repair workflow (:func:`circuits.repair.repair`) then runs unchanged with the intact model as
the source and the broken copy as the target: it must find the S-inhibition head (its attention on
the subject's tokens, ``WRONG``, falls from ~1 to ~0), choose to force it back onto them, and so
restore the intact model's metric; a control on random heads of the same layer must not.
"""

from __future__ import annotations

import copy

import torch
from transformer_lens import HookedTransformer

from circuits.groundtruth.planted import Planted
from circuits.model import attention_weights

__all__ = ["break_s_inhibition_", "broken_copy"]


def break_s_inhibition_(planted: Planted) -> None:
    """Zero the S-inhibition head's key weights on the residual dimensions the duplicate-token head writes.

    Warning:
        Mutates ``planted.model``'s weights.
    """
    dup, inh = planted.roles["duplicate-token"], planted.roles["s-inhibition"]
    assert dup.head is not None and inh.head is not None
    written = attention_weights(planted.model, dup.layer).W_O[dup.head].abs().sum(0) > 0  # (d_model,)
    with torch.no_grad():
        attention_weights(planted.model, inh.layer).W_K[inh.head][written] = 0.0


def broken_copy(planted: Planted) -> HookedTransformer:
    """A copy of the planted model with its S-inhibition head broken (the original is left intact)."""
    broken = copy.deepcopy(planted)
    break_s_inhibition_(broken)
    return broken.model
