"""``headgraph retrieval`` and ``headgraph ships``: bad input is one line, before any model loads."""

from __future__ import annotations

import pytest

from circuits.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["retrieval", "--n", "0"], "--n must be a positive number"),
        (["retrieval", "--draws", "0"], "--draws must be a positive number"),
        (["retrieval", "--depth", "2"], "depth must be a fraction between 0 and 1"),
        (["retrieval", "--needle-words", "20"], "needle_words must be an integer from 1 to 12"),
        (["retrieval", "--haystack", "-3"], "haystack must be a non-negative number"),
        (["retrieval", "--threshold", "1.5"], "--threshold must lie between 0 and 1"),
        (["ships", "--task", "nope"], "unknown task 'nope'"),
        (["ships", "--n", "0"], "--n must be a positive number of prompt pairs"),
        (["ships", "--eps", "2"], "eps must be a number in [0, 1)"),
        (["ships", "--ablation", "half"], "--ablation must be one of resample, mean, zero"),
    ],
)
def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("headgraph: error: ") and message in err, err
    assert "\n" not in err and "loading" not in captured.out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tune", "--recipe", "lora"], "--recipe must be zerotuning or act"),
        (["tune", "--objective", "loss"], "--objective accuracy or entropy"),
        (["tune", "--operation", "pow"], "--operation must be one of add, sub, mul, div"),
        (["tune", "--task", "ioi", "--operation", "sub"], "--operation applies to the arithmetic task only"),
        (["tune", "--layers", "5-2"], "--layers must look like 0-5 or 0,2,4"),
        (["tune", "--k", "0"], "k must be a positive integer"),
        (["tune", "--n-val", "0"], "--n-val and --n-test must be positive"),
        (["tune", "--task", "nope"], "unknown task 'nope'"),
    ],
)
def test_tune_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    test_bad_input_is_one_line(capsys, argv, message)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lofit", "--k", "0"], "k must be a positive integer"),
        (["lofit", "--epochs", "0"], "epochs must be a positive integer"),
        (["lofit", "--n-train", "0"], "--n-train and --n-test must be positive"),
        (["lofit", "--operation", "pow"], "--operation must be one of"),
    ],
)
def test_lofit_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    test_bad_input_is_one_line(capsys, argv, message)


def test_sahara_steps_must_be_non_negative(capsys: pytest.CaptureFixture[str]) -> None:
    test_bad_input_is_one_line(capsys, ["ships", "--sahara-steps", "-1"], "--sahara-steps must be non-negative")
