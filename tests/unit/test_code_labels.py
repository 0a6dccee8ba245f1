"""Heads labelled by their codes: on the planted IOI model the labels say what each head does, and
they survive the head-graph file and ``headgraph show``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from circuits.analysis.code_labels import format_labels, label_heads
from circuits.cli import main
from circuits.discovery.code_patching import CodePatchingSettings, code_fidelity
from circuits.errors import CircuitFileError
from circuits.groundtruth.planted_ioi import IOIConfig, ioi_model
from circuits.headgraph import HeadGraph
from tests.helpers.data import random_dataset
from tests.helpers.models import TinyFactory
from tests.helpers.view import synthetic_headgraph

ATTENDS = 0.9
"""Share of a code's answer-position firings that must attend the position the head's role reads."""


def test_planted_ioi_heads_are_labelled_by_what_they_read() -> None:
    planted = ioi_model(IOIConfig())
    data = planted.task.dataset(64, seed=0)
    inh, mover = planted.roles["s-inhibition"], planted.roles["name-mover"]
    fid = code_fidelity(CodePatchingSettings(), planted.model, data, planted.task.metric, [inh, mover])
    labels = label_heads(planted.model, data, [inh, mover], fid.codebooks, fidelity={h.head: h for h in fid.heads})
    for head, reads in ((mover, "IO"), (inh, "S2")):
        lab = labels[head]
        assert len(lab.codes) == 3 and lab.fidelity == fid[head].fidelity
        assert sum(c.share for c in lab.codes) <= 1 + 1e-9
        for code in lab.codes:
            assert code.attends.get(reads, 0.0) >= ATTENDS, (head, code)
            assert code.positions and code.examples and set(code.examples) <= {p.clean for p in data.pairs}
        # the mover's codes name the name it copies: each top code attends one token only
        if head == mover:
            assert all(len(c.tokens) == 1 for c in lab.codes)
    text = format_labels({str(h): lab.to_dict() for h, lab in labels.items()})
    assert f"{mover}:" in text and "attends IO 100%" in text


def test_code_labels_are_stored_and_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    label = {
        "n_codes": 5,
        "fidelity": 0.93,
        "converse_fidelity": None,
        "codes": [
            {"code": 7, "share": 0.5, "positions": {"END": 0.8, "other": 0.2}, "attends": {"IO": 1.0},
             "tokens": [" Mary"], "examples": ["When Mary and John went to the store, John gave a drink to"]},
        ],
    }  # fmt: skip
    hg = dataclasses.replace(synthetic_headgraph(), code_labels={"L1H2": label})
    path = hg.save(tmp_path / "circuit.json")
    back = HeadGraph.load(path)
    assert back.code_labels == {"L1H2": label}
    assert main(["show", str(path), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "L1H2: 5 codes, code fidelity 0.93" in out and "code 7 (50% of answers): fires at END 80%" in out
    assert "attends IO 100% (' Mary')" in out
    plain = synthetic_headgraph().save(tmp_path / "plain.json")
    assert "code_labels" not in plain.read_text(), "files without labels are unchanged"


@pytest.mark.parametrize("bad", [[1, 2], {"L1H2": 3}, {"nonsense": {}}])
def test_malformed_code_labels_are_refused(tmp_path: Path, bad: object) -> None:
    path = synthetic_headgraph().save(tmp_path / "c.json")
    text = path.read_text().rstrip().rstrip("}") + f', "code_labels": {__import__("json").dumps(bad)}}}\n'
    path.write_text(text)
    with pytest.raises(CircuitFileError, match="malformed"):
        HeadGraph.load(path)


def test_discover_code_labels_step_on_a_tiny_model(tmp_path: Path, tiny_model: TinyFactory) -> None:
    """What ``discover --code-labels`` adds to a head graph: a label per circuit head, saved and read back."""
    from circuits.commands.discover import _with_code_labels
    from circuits.discovery import ActivationPatching
    from circuits.headgraph import TaskRun
    from circuits.model import model_info
    from tasks import LogitDiff

    model = tiny_model()
    data = random_dataset(n=8, length=6, diff_from=2)
    scores = ActivationPatching()(model, data, LogitDiff(), progress=False)
    hg = HeadGraph(model_info(model), TaskRun("random", 0, 8), scores, scores.top_k(3))
    labelled = _with_code_labels(hg, model, data, LogitDiff())
    heads = {str(h) for h in hg.circuit.heads()}
    assert heads and set(labelled.code_labels) == heads
    for lab in labelled.code_labels.values():
        assert lab["n_codes"] >= 1 and lab["codes"] and all("attends" in c for c in lab["codes"])
    back = HeadGraph.load(labelled.save(tmp_path / "c.json"))
    assert back.code_labels == labelled.code_labels
