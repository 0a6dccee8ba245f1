"""``headgraph repair``: bad input is one line (and fails before any model loads)."""

from __future__ import annotations

import pytest

from circuits.cli import main


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("headgraph: error: ")
    assert "\n" not in err and "Traceback" not in err
    assert "loading" not in captured.out  # rejected before the model loads
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "nope"], "unknown task 'nope'; valid tasks: arithmetic, colored-objects"),
        (["--target", "arithmetic"], "unknown repair task 'arithmetic'; valid repair tasks: colored-objects, ioi"),
        (["--source", "greater-than"], "unknown repair task 'greater-than'"),
        (["--collateral", "nope"], "unknown task 'nope'"),
        (["--source", "ioi", "--target", "ioi"], "--source and --target must be different tasks"),
        (["--n", "0"], "--n must be a positive number of prompt pairs"),
        (["--candidates", "all"], "--candidates must be one of source, shared, got 'all'"),
        (["--recipe", "magic"], "--recipe must be one of oracle, parsed, got 'magic'"),
        (["--shortlist", "-3"], "shortlist must be a non-negative number of heads, got -3"),
        (["--fraction", "2"], "fraction must be in (0, 1]"),
        (["--max-heads", "0"], "max_heads must be a positive integer"),
        (["--controls", "-1"], "controls must be a positive integer"),
        (["--batch-size", "0"], "batch_size must be a positive integer"),
        (["--target-set", "colours=4"], "colored-objects has no setting 'colours'; its settings: shots, n_objects"),
        (["--target-set", "n_objects"], "--target-set expects KEY=VALUE, got 'n_objects'"),
        (["--target-set", "n_objects=many"], "n_objects must be an integer, got 'many'"),
        (["--target-set", "shots=0", "--target-set", "n_objects=99"], "colored-objects: "),
        (["--model", "not-a-model", "--n", "2"], "unknown model 'not-a-model'"),
    ],
)
def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    if "--model" in argv:  # model names are checked by the loader, after the cheap checks
        assert main(["repair", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("headgraph: error: ") and message in err and "\n" not in err
        return
    assert message in _error_line(capsys, ["repair", *argv])


def test_repair_is_listed_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "repair" in capsys.readouterr().out


def test_target_set_builds_the_variant_and_is_recorded() -> None:
    import argparse

    from circuits.commands.repair import _command, _target, register
    from tasks.colored_objects import ColoredObjects

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["repair", "--target-set", "shots=0", "--target-set", "n-objects=8", "--n", "4"])
    assert _target(args) == ColoredObjects(shots=0, n_objects=8)
    assert "--target-set shots=0 --target-set n-objects=8" in _command(args)
    default = parser.parse_args(["repair"])
    assert _target(default) == ColoredObjects() and "--target-set" not in _command(default)
