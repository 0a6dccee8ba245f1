"""Training SAEs on head-output vectors with sae-lens's own SAE classes and ``SAETrainer``.

O'Neill & Bui (2024, arXiv 2405.12522) train one small SAE on the head outputs of a handful of
prompts (10), full batch, for 500 epochs. sae-lens's ``SAETrainer`` takes an iterator of
activation batches; full-batch training is the same tensor yielded at every step, and the number of
training samples is ``epochs × vectors``. After training, the SAE is turned into its inference form
the way sae-lens saves it (``get_inference_sae_cfg_dict`` + ``process_state_dict_for_saving_inference``,
which folds a TopK SAE's decoder norms into its encoder), so codes computed in memory are exactly
the codes of the SAE written to disk and read back by ``sae_lens.SAE.load_from_disk``.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from jaxtyping import Float
from sae_lens import (
    SAE,
    LoggingConfig,
    SAETrainer,
    StandardTrainingSAE,
    StandardTrainingSAEConfig,
    TopKTrainingSAE,
    TopKTrainingSAEConfig,
    TrainingSAE,
)
from sae_lens.config import SAETrainerConfig
from sae_lens.saes.sae import SAEMetadata
from torch import Tensor

from saes.config import Architecture, SAEConfig, Sharing
from saes.errors import SAEError
from saes.head_saes import HeadSAEs
from saes.sparse_train import SparseStandardTrainingSAE

__all__ = ["train_head_saes", "train_sae"]


@contextmanager
def _bars(show: bool) -> Iterator[None]:
    """sae-lens's training bar, shown or not (its trainer takes no option for it)."""
    import sae_lens.training.sae_trainer as trainer

    before = trainer.tqdm
    if not show:
        trainer.tqdm = functools.partial(before, disable=True)
    try:
        yield
    finally:
        trainer.tqdm = before


def train_head_saes(
    x: Float[Tensor, "batch head d_model"],
    cfg: SAEConfig,
    metadata: Mapping[str, Any] | None = None,
    *,
    progress: bool = True,
) -> HeadSAEs:
    """Train the SAE(s) that code these head outputs.

    Args:
        x: the training vectors, one per (prompt, head).
        cfg: architecture, size and training settings.
        metadata: what the vectors are (model name, pooling, ...), JSON-ready; stored in every SAE's
            sae-lens metadata and in the saved manifest.
        progress: show sae-lens's training bars.
    """
    if x.ndim != 3 or x.shape[0] == 0:
        raise SAEError(f"expected training vectors [batch, head, d_model] with batch > 0, got {tuple(x.shape)}")
    meta = dict(metadata or {})
    n_heads = int(x.shape[1])
    with _bars(progress):
        if cfg.sharing is Sharing.SHARED:
            saes: tuple[SAE[Any], ...] = (train_sae(x.reshape(-1, x.shape[-1]), cfg, meta),)
        else:
            saes = tuple(train_sae(x[:, h], cfg, {**meta, "head": h}, seed_offset=h) for h in range(n_heads))
    return HeadSAEs(saes, cfg.sharing, n_heads, meta)


def train_sae(
    x: Float[Tensor, "n d_in"], cfg: SAEConfig, metadata: Mapping[str, Any] | None = None, *, seed_offset: int = 0
) -> SAE[Any]:
    """Train one sae-lens SAE full-batch on ``x`` and return its inference form.

    The global random state is left as it was: the initial weights come from a forked generator
    seeded with ``cfg.seed + seed_offset``.
    """
    d_in = int(x.shape[-1])
    n = int(x.shape[0])
    trainer_cfg = SAETrainerConfig(
        total_training_samples=cfg.epochs * n,
        train_batch_size_samples=n,
        lr=cfg.lr,
        lr_end=cfg.lr,
        device=str(x.device),
        n_batches_for_norm_estimate=1,  # full batch: one batch is the whole data set
        logger=LoggingConfig(log_to_wandb=False),
    )
    with torch.random.fork_rng(devices=[]):  # building SAEs draws random weights
        torch.manual_seed(cfg.seed + seed_offset)
        sae = _training_sae(cfg, d_in, dict(metadata or {}))  # built on the CPU: same init on every device
        batch = x.detach().to(sae.dtype).clone()  # a normal tensor even if x was made in inference mode
        with torch.enable_grad():
            trained = SAETrainer(trainer_cfg, sae, itertools.repeat(batch)).fit()
        return _to_inference(trained)


def _training_sae(cfg: SAEConfig, d_in: int, metadata: dict[str, Any]) -> TrainingSAE[Any]:
    common: dict[str, Any] = {
        "d_in": d_in,
        "d_sae": cfg.d_sae,
        "normalize_activations": "expected_average_only_in" if cfg.normalize else "none",
        "metadata": SAEMetadata(**metadata),
    }
    if cfg.architecture is Architecture.TOPK:
        return TopKTrainingSAE(TopKTrainingSAEConfig(k=cfg.k, **common))
    standard = SparseStandardTrainingSAE if cfg.sparse_products else StandardTrainingSAE
    return standard(StandardTrainingSAEConfig(l1_coefficient=cfg.sae_lens_l1(d_in), **common))


@torch.no_grad()
def _to_inference(trained: TrainingSAE[Any]) -> SAE[Any]:
    """The inference SAE that ``trained.save_inference_model`` would write, built in memory."""
    cfg_dict = trained.cfg.get_inference_sae_cfg_dict()
    state = {k: v.clone() for k, v in trained.state_dict().items()}
    trained.process_state_dict_for_saving_inference(state)
    sae = SAE.from_dict(cfg_dict)
    sae.load_state_dict(state)
    return sae.to(trained.device).eval()
