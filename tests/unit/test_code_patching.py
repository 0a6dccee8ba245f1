"""Code patching on planted circuits: each planted head's codes are pure with respect to what it
carries, and its code carries its exact patching effect (both directions)."""

from __future__ import annotations

import re

import pytest
import torch

from circuits.discovery import ActivationPatching
from circuits.discovery.code_patching import (
    CodePatchingSettings,
    circuit_reduction,
    code_fidelity,
    head_position_outputs,
    train_codebooks,
)
from circuits.errors import HeadgraphError
from circuits.graph import Node
from circuits.groundtruth.planted_induction import InductionConfig, induction_model
from circuits.groundtruth.planted_ioi import IOIConfig, ioi_model
from circuits.scores import UninformativeScoresWarning
from saes import Architecture, CodebookConfig, CodeVector, SAEError, code_purity
from tests.helpers.checks import unchecked

PURITY = 0.9
"""Acceptance bar: share of items whose label is their code's majority label."""

FIDELITY = 0.9
"""Acceptance bar: share of a head's exact patching effect carried by code patching."""

EXACT_ATOL = 1e-6
"""The exact column must equal exact activation patching (whose scores are stored in float32)."""

PAIRS = 64
SETTINGS = CodePatchingSettings()


def _labels_at(outputs: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    return outputs[torch.arange(outputs.shape[0]), pos]


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_ioi_heads_have_pure_codes_that_carry_their_effect(seed: int) -> None:
    planted = ioi_model(IOIConfig(seed=seed))
    model, task = planted.model, planted.task
    data = task.dataset(PAIRS, seed=seed)
    dup, inh, mover = (planted.roles[r] for r in ("duplicate-token", "s-inhibition", "name-mover"))
    heads = [dup, inh, mover]
    result = code_fidelity(CodePatchingSettings(seed=seed), model, data, task.metric, heads)

    exact = ActivationPatching(heads=tuple(map(str, heads)))(model, data, task.metric, progress=False)
    for h in result.heads:
        assert h.exact == pytest.approx(float(exact.values[exact.graph.node_index(h.head)]), abs=EXACT_ATOL)
        assert h.fidelity >= FIDELITY, f"{h.head}: code patching carries {h.fidelity:.3f} of {h.exact:.3f}"
    for head in (inh, mover):  # the duplicate-token head's clean output does nothing on an ABC prompt
        assert result[head].converse_fidelity >= FIDELITY, result[head]
    assert abs(result[dup].exact_converse) < 1e-9 and abs(result[dup].code_converse) < 1e-9

    # purity: the mover's code at END names the indirect object, the S-inhibition head's the
    # subject, the duplicate-token head's whether the position is S2
    outs = head_position_outputs(model, data.clean, heads)
    end = data.positions["END"]
    books = result.codebooks
    names = IOIConfig().task.n_names
    for head, label in ((mover, data.targets.answers[:, 0]), (inh, data.targets.wrong[:, 0])):
        codes = books[head].codes(_labels_at(outs[head], end))
        assert code_purity(codes, label) >= PURITY, head
        assert len(set(codes.tolist())) <= 2 * names, "purity is not bought with one code per prompt"
    real = torch.arange(data.clean.shape[1])[None] < data.lengths[:, None]
    is_s2 = torch.arange(data.clean.shape[1])[None] == data.positions["S2"][:, None]
    codes = books[dup].codes(outs[dup])[real]
    assert code_purity(codes, is_s2[real].long()) >= PURITY
    assert len(set(codes.tolist())) <= 4

    circuit = circuit_reduction(SETTINGS, model, data, task.metric, heads, codebooks=books)
    assert circuit.faithfulness >= FIDELITY, circuit
    assert circuit.fidelity >= FIDELITY, circuit


def test_planted_induction_heads_have_pure_codes_that_carry_their_effect() -> None:
    planted = induction_model(InductionConfig())
    model, task = planted.model, planted.task
    data = task.dataset(PAIRS, seed=0)
    prev, ind = planted.roles["previous-token"], planted.roles["induction"]
    result = code_fidelity(SETTINGS, model, data, task.metric, [prev, ind])
    for h in result.heads:
        assert h.fidelity >= FIDELITY and h.converse_fidelity >= FIDELITY, h
    outs = head_position_outputs(model, data.clean, [prev, ind])
    # the previous-token head's code names the token before each position; the induction head's,
    # at the query, the answer it copies
    real = (torch.arange(data.clean.shape[1])[None] < data.lengths[:, None])[:, 1:]
    codes = result.codebooks[prev].codes(outs[prev][:, 1:])[real]
    assert code_purity(codes, data.clean[:, :-1][real]) >= PURITY
    q = data.positions["query"]
    codes = result.codebooks[ind].codes(_labels_at(outs[ind], q))
    assert code_purity(codes, data.targets.answers[:, 0]) >= PURITY
    circuit = circuit_reduction(SETTINGS, model, data, task.metric, [prev, ind], codebooks=result.codebooks)
    assert circuit.faithfulness >= FIDELITY and circuit.fidelity >= FIDELITY, circuit


def test_codes_that_carry_nothing_fail_the_converse() -> None:
    """A dead code book (ReLU + L1 with a huge penalty: every vector is NO_CODE, its vector b_dec)
    looks faithful when noising (any uninformative vector removes the head's signal) but carries
    none of the clean output back into the corrupt run: the converse is what catches it."""
    planted = ioi_model(IOIConfig())
    data = planted.task.dataset(32, seed=0)
    mover = planted.roles["name-mover"]
    dead = CodePatchingSettings(codebook=CodebookConfig(architecture=Architecture.RELU_L1, l1_coefficient=1e3))
    with pytest.warns(UninformativeScoresWarning, match="dead or saturated"):
        result = code_fidelity(dead, planted.model, data, planted.task.metric, [mover])
    assert result[mover].n_codes == 1 and len(result.warnings) == 1
    assert result[mover].converse_fidelity < 0.1


def test_decoder_and_mean_vectors() -> None:
    """DECODER keeps the vector's own activation (the 1-sparse reconstruction); MEAN uses the code's
    mean activation, so two vectors with the same code get the same vector."""
    planted = ioi_model(IOIConfig())
    data = planted.task.dataset(16, seed=0)
    mover = planted.roles["name-mover"]
    x = head_position_outputs(planted.model, data.clean, [mover])[mover].flatten(0, 1)
    for vector in CodeVector:
        settings = CodePatchingSettings(codebook=CodebookConfig(vector=vector, epochs=100))
        book = train_codebooks(settings, planted.model, data, [mover])[mover]
        lat, codes, v = book.latents(x), book.codes(x), book.vectors(x)
        fired = codes >= 0
        c = codes[fired]
        act = lat[fired].gather(-1, c[:, None])[:, 0] if vector is CodeVector.DECODER else book.mean_activation[c]
        w = book.sae.W_dec.to(x)
        expected = book.sae.b_dec.to(x) + act.to(x)[:, None] * w[c]
        torch.testing.assert_close(v[fired], expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(v[~fired], book.sae.b_dec.to(x).expand_as(v[~fired]), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"silent_below": 1.0}, "silent_below must be in [0, 1), got 1.0"),
        ({"silent_below": -0.1}, "silent_below must be in [0, 1), got -0.1"),
        ({"vector": "mean"}, "vector must be a CodeVector, got 'mean'"),
        ({"d_sae": 0}, "d_sae must be a positive integer, got 0"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
    ],
)
def test_bad_codebook_settings_raise(bad: dict[str, object], message: str) -> None:
    with pytest.raises(SAEError, match=re.escape(message)), unchecked():  # the hand-written check, not the checker
        CodebookConfig(**bad)  # type: ignore[arg-type]


def test_bad_heads_and_settings_raise() -> None:
    planted = ioi_model(IOIConfig())
    data = planted.task.dataset(4, seed=0)
    for heads in ([], [Node.of_head(9, 0)], [Node.of_head(0, 1), Node.of_head(0, 1)], [Node.of_mlp(0)]):
        with pytest.raises(HeadgraphError):
            code_fidelity(SETTINGS, planted.model, data, planted.task.metric, heads)
    with pytest.raises(HeadgraphError):
        CodePatchingSettings(train_pairs=0)


def test_code_purity() -> None:
    assert code_purity(torch.tensor([3, 3, 3]), torch.tensor([1, 2, 2])) == pytest.approx(2 / 3)
    assert code_purity(torch.arange(5), torch.zeros(5, dtype=torch.long)) == 1.0
    with (
        pytest.raises(SAEError, match=re.escape("need as many codes as labels (and some), got (1,) and (2,)")),
        unchecked(),
    ):
        code_purity(torch.tensor([1]), torch.tensor([1, 2]))
