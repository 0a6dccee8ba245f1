"""IOI roles on the embedded model (slow, ~1 min): Wang et al.'s classes appear where expected.

The golden IOI circuit of SmolLM2-135M (activation patching, 320 pairs) supplies the total effects;
attention and direct effects are measured on :data:`N_PAIRS` fresh pairs. Measured with 64 pairs
(``headgraph compare ... --roles``, docs/ioi-roles-smollm2-gemma3.md): four name movers and a
subject suppressor in layer 23, a negative name mover in layer 24, S-inhibition heads in layers
16-20, induction heads in layers 17-18 and duplicate-token heads in layers 5-15.
"""

from __future__ import annotations

import pytest
from transformer_lens import HookedTransformer

from circuits.analysis.head_roles import Role, assign_roles, head_signals
from circuits.groundtruth.golden import load_golden
from circuits.model import text_tokenizer
from tasks import IOI

pytestmark = pytest.mark.slow

N_PAIRS = 16
"""IOI pairs for the attention and direct-effect signals."""

EXPECTED_ROLES = {
    Role.NAME_MOVER,
    Role.NEGATIVE_MOVER,
    Role.S_SUPPRESSOR,
    Role.S_INHIBITION,
    Role.INDUCTION,
    Role.DUPLICATE_TOKEN,
}
"""Roles found with 64 pairs; 16 pairs must find them too."""

LATE = 0.6
"""Name movers and negative name movers sit after this fraction of depth (0.79 and 0.83 measured)."""


def test_smollm2_ioi_circuit_holds_wang_et_al_roles(smollm2: HookedTransformer) -> None:
    golden = load_golden("ioi-smollm2-135m")
    data = IOI().dataset(text_tokenizer(smollm2), N_PAIRS, seed=0)
    roles = assign_roles(head_signals(smollm2, data, golden.pooled.scores))
    assert {h.role for h in roles.heads} >= EXPECTED_ROLES
    movers = roles.holders(Role.NAME_MOVER) + roles.holders(Role.NEGATIVE_MOVER)
    assert all(h.depth > LATE for h in movers), [(str(h.signal.node), h.depth) for h in movers]
    dup, ind = roles.holders(Role.DUPLICATE_TOKEN), roles.holders(Role.INDUCTION)
    assert min(h.depth for h in dup) < max(h.depth for h in movers) and min(h.depth for h in ind) < LATE
