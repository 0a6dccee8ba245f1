"""``--device cpu|cuda|auto``: resolution, one-line errors, and the CUDA path when a GPU is present."""

from __future__ import annotations

import pytest
import torch

from circuits.cli import main
from circuits.discovery import ActivationPatching, EdgePatching
from circuits.errors import HeadgraphError
from circuits.groundtruth.planted import PLANTED
from circuits.model import Device, resolve_device

HAS_CUDA = torch.cuda.is_available()
NO_CUDA = "no CUDA device is present on this machine"
CUDA_ATOL = 1e-5
"""CPU against CUDA scores of the float64 planted model (different kernels, same arithmetic)."""


def test_cpu_and_auto_resolve_and_bad_names_raise() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(Device.AUTO) == ("cuda" if HAS_CUDA else "cpu")
    with pytest.raises(HeadgraphError, match="valid devices: cpu, cuda, auto"):
        resolve_device("gpu")


@pytest.mark.skipif(HAS_CUDA, reason="a CUDA device is present: cuda resolves")
def test_cuda_without_a_device_is_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(HeadgraphError, match="no CUDA device"):
        resolve_device("cuda")
    status = main(["discover", "--device", "cuda", "--out", str(tmp_path), "--n", "2"])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("headgraph: error: device cuda: no CUDA device") and err.count("\n") == 1


@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)
@pytest.mark.parametrize("method", [ActivationPatching(), EdgePatching()])
def test_planted_scores_on_cuda_equal_the_cpu(method) -> None:  # type: ignore[no-untyped-def]
    p = PLANTED["ioi"]()
    data = p.task.dataset(8, seed=0)
    cpu = method(p.model, data, p.task.metric, progress=False)
    gpu = method(p.model.to("cuda", print_details=False), data.to("cuda"), p.task.metric, progress=False)
    assert gpu.values.device.type == "cpu" or gpu.values.is_cuda
    assert torch.allclose(gpu.values.cpu().nan_to_num(), cpu.values.nan_to_num(), atol=CUDA_ATOL)
    assert gpu.baseline.clean == pytest.approx(cpu.baseline.clean, abs=CUDA_ATOL)


@pytest.mark.skipif(HAS_CUDA, reason="a CUDA device is present: cuda resolves")
@pytest.mark.parametrize(
    "argv",
    [
        ["retrieval", "--n", "2"],
        ["ships", "--n", "2"],
        ["tune", "--recipe", "zerotuning", "--task", "arithmetic"],
        ["lofit", "--task", "arithmetic"],
    ],
)
def test_seed_commands_honour_device(capsys: pytest.CaptureFixture[str], tmp_path, argv: list[str]) -> None:  # type: ignore[no-untyped-def]
    """The issue-19 commands pass --device to the model (they used to accept and ignore it)."""
    status = main([*argv, "--device", "cuda", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("headgraph: error: device cuda: no CUDA device") and err.count("\n") == 1
