"""Issue 20: bad input and faults against the CLI, as a hostile user would try them (items 1, 3–8, 10).

``discover`` runs here on a tiny cfg-built model that carries SmolLM2's tokenizer (monkeypatched
in as ``load_model``), so the real task data flows through the real commands in seconds. Every
case ends in exit 0 with sound output, or exit 2 with one ``headgraph: error:`` line, never a
traceback and never a file with wrong numbers.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformer_lens import HookedTransformer

import circuits.model
from circuits.cli import main
from circuits.errors import ModelLoadError
from circuits.groundtruth.golden import golden_dir
from circuits.headgraph import HeadGraph
from tasks import TextTokenizer
from tests.helpers.models import tiny_smollm

Loader = Callable[..., HookedTransformer]


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("headgraph: error: "), err
    assert "\n" not in err and "Traceback" not in err
    return err


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch, smollm2_tokenizer: TextTokenizer) -> list[str]:
    """``load_model`` gives the tiny model; the list records each load (empty: nothing loaded)."""
    calls: list[str] = []

    def load(name: str, **_: Any) -> HookedTransformer:
        calls.append(name)
        return tiny_smollm(smollm2_tokenizer, nan=name == "nan-model")

    monkeypatch.setattr(circuits.model, "load_model", load)
    return calls


DISCOVER = ["discover", "--task", "ioi", "--n", "8", "--top-k", "3", "--quiet"]


# ---- item 1: random bytes in the weights gave "clean nan", exit 0 and a file nobody can read --------------


def test_non_finite_outputs_are_an_error_and_no_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, loads: list[str]
) -> None:
    out = tmp_path / "out"
    err = _error_line(capsys, [*DISCOVER, "--model", "nan-model", "--out", str(out)])
    assert "not finite" in err and "nothing was written" in err
    assert not (out / "circuit.json").exists() and not (out / "circuit.png").exists()


# ---- item 3: outputs are checked before the work ----------------------------------------------------------


def test_out_that_is_a_file_fails_before_the_model_loads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, loads: list[str]
) -> None:
    f = tmp_path / "taken"
    f.write_text("mine")
    assert "is a file" in _error_line(capsys, [*DISCOVER, "--out", str(f)])
    assert "is a file" in _error_line(capsys, [*DISCOVER, "--out", str(f / "below")])
    assert loads == [] and f.read_text() == "mine"


def test_a_png_that_is_a_folder_fails_before_the_work_and_leaves_no_half_result(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, loads: list[str]
) -> None:
    (tmp_path / "circuit.png").mkdir()
    assert "circuit.png is a folder" in _error_line(capsys, [*DISCOVER, "--out", str(tmp_path)])
    assert loads == [] and not (tmp_path / "circuit.json").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "CIRCUIT", "--out", "FILE"],
        ["repair", "--n", "4", "--out", "FILE"],
        ["tasks", "report", "--n", "4", "--out", "FILE"],
        ["compare", "CIRCUIT", "CIRCUIT", "--roles", "--out", "FILE"],
        ["golden", "build", "--name", "ioi-smollm2-135m", "--out", "FOLDER"],
        ["show", "CIRCUIT", "--png", "FOLDER"],
    ],
)
def test_every_output_path_is_checked_before_the_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, loads: list[str], circuit_file: Path, argv: list[str]
) -> None:
    f = tmp_path / "a-file"
    f.write_text("mine")
    (tmp_path / "a-folder").mkdir()
    subst = {"FILE": str(f), "FOLDER": str(tmp_path / "a-folder"), "CIRCUIT": str(circuit_file)}
    err = _error_line(capsys, [subst.get(a, a) for a in argv])
    assert "is a file" in err or "is a folder" in err
    assert loads == [] and f.read_text() == "mine"


@pytest.fixture
def circuit_file(tmp_path: Path, loads: list[str], capsys: pytest.CaptureFixture[str]) -> Path:
    """A circuit file written by ``discover`` on the tiny model (IOI, 8 pairs)."""
    out = tmp_path / "made"
    assert main([*DISCOVER, "--out", str(out)]) == 0
    capsys.readouterr()
    loads.clear()
    return out / "circuit.json"


# ---- items 4 and 5: every malformed file is one line -----------------------------------------------------


def test_show_of_a_folder_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert "is a folder" in _error_line(capsys, ["show", str(tmp_path)])


def _edited(path: Path, edit: Callable[[dict[str, Any]], None], tmp_path: Path) -> Path:
    doc = json.loads(path.read_text())
    edit(doc)
    out = tmp_path / "edited.json"
    out.write_text(json.dumps(doc))  # json writes NaN and Infinity as the literals Python reads back
    return out


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["scores"].update(values=d["scores"]["values"][:-3]), "scored ids but"),
        (lambda d: d["scores"]["values"].__setitem__(0, math.nan), "not a finite number"),
        (lambda d: d["scores"]["values"].__setitem__(0, math.inf), "not a finite number"),
        (lambda d: d["scores"]["values"].__setitem__(0, None), "malformed"),
        (lambda d: d["baseline"].update(clean=None), "baseline is not finite"),
        (lambda d: d["baseline"].update(corrupt=-math.inf), "baseline is not finite"),
        (lambda d: d["scores"]["ids"].__setitem__(1, d["scores"]["ids"][0]), "scored twice"),
        (lambda d: d["scores"]["ids"].__setitem__(0, "L99H0"), "malformed"),
        (lambda d: d["graph"].update(n_layers=-1), "malformed"),
        (lambda d: d.update(warnings="not a list"), "warnings must be a list"),
    ],
)
def test_a_malformed_circuit_file_is_one_line_for_every_reader(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, circuit_file: Path, edit: Any, message: str
) -> None:
    bad = _edited(circuit_file, edit, tmp_path)
    assert message in _error_line(capsys, ["show", str(bad), "--no-plot"])
    assert message in _error_line(capsys, ["compare", str(bad), str(circuit_file)])
    assert message in _error_line(capsys, ["score", str(bad), "--truth", "ioi-wang2022"])
    assert message in _error_line(capsys, ["evaluate", str(bad)])


def _leaves(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(doc, list):
        return _leaves(doc[0], (*path, 0)) if doc else [path]
    return [path]


JUNK = (None, "x", -1, 1.5, [], {}, math.nan, math.inf)


def test_fuzzing_every_field_never_gives_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, circuit_file: Path
) -> None:
    doc = json.loads(circuit_file.read_text())
    bad = tmp_path / "fuzzed.json"
    tried = 0
    for path in _leaves(doc):
        for junk in JUNK:
            fuzzed = json.loads(circuit_file.read_text())
            node = fuzzed
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = junk
            bad.write_text(json.dumps(fuzzed))
            status = main(["show", str(bad), "--no-plot"])  # any exception fails the test
            out = capsys.readouterr()
            assert status in (0, 2) and "Traceback" not in out.err
            if status == 2:
                assert out.err.startswith("headgraph: error: ") and out.err.count("\n") == 1
            tried += 1
    assert tried > 100


def test_show_top_must_be_positive(capsys: pytest.CaptureFixture[str], circuit_file: Path) -> None:
    assert "--top must be a positive" in _error_line(capsys, ["show", str(circuit_file), "--top", "-1"])


# ---- item 6: a degenerate baseline warns, is recorded, and --strict refuses it -----------------------------


def test_a_model_at_chance_warns_records_it_and_strict_refuses(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, loads: list[str]
) -> None:
    out = tmp_path / "out"
    assert main([*DISCOVER, "--out", str(out)]) == 0  # a random model does not do IOI
    err = capsys.readouterr().err
    assert "headgraph: warning: clean accuracy" in err and "at chance" in err
    hg = HeadGraph.load(out / "circuit.json")
    assert any("at chance" in w for w in hg.warnings)
    assert main(["show", str(out / "circuit.json"), "--no-plot"]) == 0
    assert "warning (recorded when the circuit was made): clean accuracy" in capsys.readouterr().out
    strict = tmp_path / "strict"
    assert "strict: nothing was written" in _error_line(capsys, [*DISCOVER, "--strict", "--out", str(strict)])
    assert not strict.exists()


# ---- item 7: compare and score check the model and task, not only the shape -------------------------------


def test_compare_refuses_a_relabelled_model_unless_forced(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, circuit_file: Path
) -> None:
    other = _edited(circuit_file, lambda d: d["model"].update(name="other-model"), tmp_path)
    err = _error_line(capsys, ["compare", str(circuit_file), str(other)])
    assert "model 'tiny-smollm' vs 'other-model'" in err and "--force" in err
    rehashed = _edited(circuit_file, lambda d: d["model"].update(config_hash="0" * 16), tmp_path)
    assert "config hash" in _error_line(capsys, ["compare", str(circuit_file), str(rehashed)])
    assert main(["compare", str(circuit_file), str(other), "--force"]) == 0
    assert "--force: comparing across model" in capsys.readouterr().err
    other_task = _edited(circuit_file, lambda d: d["task"].update(name="greater-than"), tmp_path)
    assert main(["compare", str(circuit_file), str(other_task)]) == 0  # two tasks' overlap is the point
    stages = f"{circuit_file},{other_task}"  # but one side's stages are one task
    assert "task 'ioi' vs 'greater-than'" in _error_line(capsys, ["compare", stages, str(circuit_file)])


def test_score_refuses_another_model_or_task_than_the_truths(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A SmolLM2 circuit (the golden's own) relabelled as another model of the same shape, or of another task."""
    shipped = json.loads((golden_dir() / "ioi-smollm2-135m.json").read_text())["pooled"]
    own = tmp_path / "own.json"
    own.write_text(json.dumps(shipped))
    truth = ["--truth", "golden/ioi-smollm2-135m"]
    assert main(["score", str(own), *truth]) == 0  # the golden against itself: sound
    capsys.readouterr()
    for field, value, message in (
        ("model", {"name": "smollm2-twin"}, "model 'smollm2-twin' vs 'smollm2-135m'"),
        ("model", {"config_hash": "0" * 16}, "config hash"),
        ("task", {"name": "greater-than"}, "task 'greater-than' vs 'ioi'"),
    ):
        bad = _edited(own, lambda d, f=field, v=value: d[f].update(v), tmp_path)
        err = _error_line(capsys, ["score", str(bad), *truth])
        assert message in err and "--force" in err
        assert main(["score", str(bad), *truth, "--force"]) == 0
        assert "--force: scoring across" in capsys.readouterr().err


# ---- item 8: regress refuses a golden whose recipe and stored circuits disagree, before the work ----------


def test_regress_refuses_a_golden_whose_recipe_task_differs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, loads: list[str]
) -> None:
    shipped = golden_dir() / "ioi-smollm2-135m.json"
    bad = _edited(shipped, lambda d: d["recipe"].update(task="greater-than"), tmp_path)
    err = _error_line(capsys, ["regress", str(bad), "--quick"])
    assert "the recipe's task is 'greater-than' but its pooled circuit is of 'ioi'" in err
    assert loads == []


def test_regress_refuses_a_model_with_another_config(
    capsys: pytest.CaptureFixture[str], loads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import circuits.groundtruth.golden as golden

    monkeypatch.setattr(golden, "recipe_model", lambda recipe, progress=True: circuits.model.load_model(recipe.model))
    err = _error_line(capsys, ["regress", "ioi-smollm2-135m", "--quick", "--quiet"])
    assert "model 'smollm2-135m' vs 'tiny-smollm'" in err and "config hash" in err and "--force" in err


# ---- item 10: --set tuples, --n beyond the distinct pairs, --quiet, help text -------------------------------


def test_set_heads_takes_a_comma_separated_list(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, loads: list[str]
) -> None:
    out = tmp_path / "out"
    assert main([*DISCOVER, "--set", "heads=L1H2,L2H0", "--top-k", "2", "--out", str(out)]) == 0
    doc = json.loads((out / "circuit.json").read_text())
    assert sorted(doc["scores"]["ids"]) == ["L1H2", "L2H0"]
    assert doc["method"]["params"]["heads"] == ["L1H2", "L2H0"]
    assert "'L'" not in capsys.readouterr().err


def test_n_beyond_the_tasks_distinct_pairs_fails_before_loading(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, loads: list[str]
) -> None:
    err = _error_line(capsys, ["discover", "--task", "greater-than", "--n", "100000", "--out", str(tmp_path)])
    assert "distinct prompt pairs" in err and "ask for at most" in err
    assert loads == []


def test_repeated_pairs_are_said(capsys: pytest.CaptureFixture[str], tmp_path: Path, loads: list[str]) -> None:
    from tasks import TASKS

    repeats = TASKS["greater-than"]().check_distinct(300, seed=0)
    assert repeats > 0  # 6,720 distinct texts: 300 draws repeat some (birthday problem)
    argv = ["discover", "--task", "greater-than", "--n", "300", "--top-k", "2", "--quiet", "--out", str(tmp_path)]
    assert main([*argv, "--set", "heads=L0H0"]) == 0
    assert f"300 prompt pairs ({repeats} repeat an earlier pair)" in capsys.readouterr().out


def test_quiet_shows_no_progress_bar(capsys: pytest.CaptureFixture[str], tmp_path: Path, loads: list[str]) -> None:
    assert main([*DISCOVER, "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "it/s" not in err and "%|" not in err
    assert main([*DISCOVER[:-1], "--out", str(tmp_path)]) == 0  # the check can fail: bars do show without it
    assert "%|" in capsys.readouterr().err


def test_quiet_silences_the_conversion_and_sae_training_bars(capsys: pytest.CaptureFixture[str]) -> None:
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    from circuits.model.loading import _transformers_bars
    from saes import SAEConfig, train_head_saes

    for show in (False, True):
        with _transformers_bars(show):
            list(gguf_utils.tqdm(range(3), desc="dequantizing"))
        x = torch.randn(16, 2, 8)
        train_head_saes(x, SAEConfig(d_sae=4, epochs=2), progress=show)
        err = capsys.readouterr().err
        assert ("dequantizing" in err and "Training SAE" in err) is show
        assert ("dequantizing" in err or "Training SAE" in err) is show


def test_compare_fractions_help_says_fractions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "fractions of the heads, in (0, 1]" in text and "%" not in text.split("--fractions")[1][:80]


def test_load_model_of_a_number_is_one_line() -> None:
    """Item 9: ``load_model(123)`` was a raw AttributeError (unwrapped: tests add their own type checker)."""
    with pytest.raises(ModelLoadError, match="must be a string, got int 123"):
        inspect.unwrap(circuits.model.loading.load_model)(123)
