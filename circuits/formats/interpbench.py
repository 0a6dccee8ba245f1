"""InterpBench case folders: a trained HookedTransformer and its exact circuit.

InterpBench (Gupta, Arcuschin, Kwa & Garriga-Alonso 2024, "InterpBench: Semi-Synthetic
Transformers for Evaluating Mechanistic Interpretability Techniques", NeurIPS Datasets &
Benchmarks, arXiv:2407.14494) ships 86 models trained with strict interchange-intervention
training, each in a folder (HF ``cybershiptrooper/InterpBench``, one folder per case) with:

* ``ll_model.pth``: the model's ``state_dict`` (``torch.save``);
* ``ll_model_cfg.pkl``: its config, a pickled ``HookedTransformerConfig.to_dict()`` (some cases
  pickle the ``HookedTransformerConfig`` itself);
* ``meta.json``: the training arguments;
* ``edges.pkl``: the ground-truth circuit, a pickled list of ``(from, to)`` pairs of TransformerLens
  hook names with an optional head index, ``"blocks.1.hook_q_input[0]"``.

The edge list (``circuit_to_edges_list`` of the case's ``get_ll_gt_circuit()``) uses the
``acdc_hooks`` granularity for the tracr cases: senders ``hook_embed``, ``hook_pos_embed``,
``blocks.{l}.attn.hook_result[h]`` and ``blocks.{l}.hook_mlp_out``; receivers
``blocks.{l}.hook_{q,k,v}_input[h]``, ``blocks.{l}.hook_mlp_in`` and the last block's
``hook_resid_post``; and edges *inside* a component (``hook_q_input[h] → attn.hook_q[h] →
attn.hook_result[h]``, ``hook_mlp_in → hook_mlp_out``). The IOI case lists edges between component
outputs instead (``attn.hook_result[h] → attn.hook_result[h']``, from ``attn.hook_z`` renamed).

Mapping onto headgraph's :class:`~circuits.graph.ComponentGraph` (naming table in
:mod:`circuits.formats.names`): a sender → receiver-input pair is one headgraph edge
(``hook_embed``/``hook_pos_embed``/``blocks.0.hook_resid_pre`` → ``input``, resid_post of the last
block → ``logits``, ``hook_{q,k,v}_input[h]`` → that head's q/k/v input); a sender → component
output pair (IOI style) does not say which input of a head it enters, so it becomes the head's q,
k and v edges (all three; one edge for an MLP); an edge inside a component only puts the
component in the circuit. Anything else (a receiver sending to another component, a
``hook_resid_post`` before the last block, an edge the graph does not have) is refused with the
offending pair named.

Sources: ``FlyingPumba/circuits-benchmark`` @ 0cfd831:
``circuits_benchmark/commands/train/iit/iit_train.py`` (what is saved),
``utils/ll_model_loader/interp_bench_model_loader.py`` (how it is loaded),
``utils/circuit/edges_list.py`` and ``transformers/tracr_circuits_builder.py`` (the names),
``benchmark/cases/case_ioi.py`` (the IOI renames); ``metadata/build_metadata.py`` (file names).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from circuits.errors import CircuitFileError, HeadgraphError
from circuits.graph import QKV, ComponentGraph, Edge, Node, NodeKind
from circuits.groundtruth.published import GroundTruth, ModelShape
from circuits.model import graph_of, prepare_model_
from circuits.scores import Circuit

__all__ = [
    "CITATION",
    "PREFIX",
    "InterpBenchCase",
    "load_interpbench",
    "map_interpbench_edges",
    "read_interpbench_truth",
]

PREFIX = "interpbench:"
"""``--truth interpbench:FOLDER`` names a case folder."""

CITATION = (
    "Gupta, Arcuschin, Kwa & Garriga-Alonso (2024). InterpBench: Semi-Synthetic Transformers for Evaluating "
    "Mechanistic Interpretability Techniques. NeurIPS 2024 Datasets and Benchmarks. arXiv:2407.14494"
)
WEIGHTS, CONFIG, META, EDGES = "ll_model.pth", "ll_model_cfg.pkl", "meta.json", "edges.pkl"

_NAME = re.compile(r"^(?P<hook>[A-Za-z0-9_.]+?)(?:\[(?P<index>\d+)\])?$")
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


class _Role(Enum):
    SENDER = "sender"  # a component's output: an edge from here leaves the component
    INPUT = "input"  # a component's input: an edge into here enters the component
    INSIDE = "inside"  # within a head (hook_q, hook_k, hook_v)


@dataclass(frozen=True)
class _Hook:
    node: Node
    role: _Role
    qkv: QKV | None = None


def _parse(name: str, n_layers: int) -> _Hook:
    m = _NAME.match(name)
    if not m:
        raise CircuitFileError(f"not an InterpBench node name: {name!r}")
    hook, index = m["hook"], m["index"]
    if hook in ("hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre"):
        return _Hook(Node(NodeKind.INPUT, -1), _Role.SENDER)
    b = _BLOCK.match(hook)
    if not b:
        raise CircuitFileError(f"not an InterpBench node name: {name!r}")
    layer, rest = int(b[1]), b[2]
    if rest == "hook_resid_post":
        if layer != n_layers - 1:
            raise CircuitFileError(f"{name!r}: only the last block's resid_post (the logits) can end an edge")
        return _Hook(Node(NodeKind.LOGITS, n_layers), _Role.INPUT)
    if rest in ("hook_mlp_out", "mlp.hook_post"):
        return _Hook(Node.of_mlp(layer), _Role.SENDER)
    if rest == "hook_mlp_in":
        return _Hook(Node.of_mlp(layer), _Role.INPUT)
    if index is None:
        raise CircuitFileError(f"{name!r}: an attention hook needs a head index, e.g. {hook}[0]")
    head = Node.of_head(layer, int(index))
    if rest in ("attn.hook_result", "attn.hook_z"):
        return _Hook(head, _Role.SENDER)
    if m2 := re.fullmatch(r"hook_([qkv])_input", rest):
        return _Hook(head, _Role.INPUT, QKV(m2[1]))
    if m2 := re.fullmatch(r"attn\.hook_([qkv])", rest):
        return _Hook(head, _Role.INSIDE, QKV(m2[1]))
    raise CircuitFileError(f"not an InterpBench node name: {name!r}")


def map_interpbench_edges(pairs: Iterable[object], graph: ComponentGraph) -> tuple[frozenset[Node], frozenset[Edge]]:
    """InterpBench ``(from, to)`` hook pairs as headgraph nodes and edges on ``graph`` (module docstring).

    Examples:
        >>> nodes, edges = map_interpbench_edges(
        ...     [("hook_embed", "blocks.1.hook_k_input[0]"), ("blocks.1.hook_k_input[0]", "blocks.1.attn.hook_k[0]"),
        ...      ("blocks.1.attn.hook_result[0]", "blocks.1.hook_resid_post")], ComponentGraph(2, 2))
        >>> sorted(str(e) for e in edges), sorted(str(n) for n in nodes)
        (['L1H0->logits', 'input->L1H0<k>'], ['L1H0', 'input', 'logits'])

    Raises:
        CircuitFileError: a name or a pair that does not map (named in the message).
    """
    nodes: set[Node] = set()
    edges: set[Edge] = set()
    for pair in pairs:
        if not (isinstance(pair, tuple | list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise CircuitFileError(f"an InterpBench edge is a (from, to) pair of names, got {pair!r}")
        a, b = _parse(pair[0], graph.n_layers), _parse(pair[1], graph.n_layers)
        nodes |= {a.node, b.node}
        if a.node == b.node:
            if a.role is _Role.SENDER:
                raise CircuitFileError(f"{pair!r}: an edge from a component's output back into itself")
            continue  # inside one component: membership only
        if a.role is not _Role.SENDER:
            raise CircuitFileError(f"{pair!r}: the edge leaves {pair[0]}, which is not a component's output")
        if b.role is _Role.INPUT:
            new = [Edge(a.node, b.node, b.qkv if graph.split_qkv else None)]
        elif b.node.kind is NodeKind.HEAD and graph.split_qkv:
            new = [Edge(a.node, b.node, q) for q in (QKV.Q, QKV.K, QKV.V)]
        else:
            new = [Edge(a.node, b.node)]
        for e in new:
            try:
                graph.edge_index(e)
            except HeadgraphError:
                raise CircuitFileError(
                    f"{pair!r} maps to {e}, which a {graph.n_layers}-layer graph does not have"
                ) from None
        edges.update(new)
    return frozenset(nodes), frozenset(edges)


def _config(folder: Path) -> HookedTransformerConfig:
    from circuits.formats.safe_pickle import safe_load

    raw = safe_load(folder / CONFIG)
    if isinstance(raw, HookedTransformerConfig):
        raw = raw.to_dict()
    if not isinstance(raw, Mapping):
        raise CircuitFileError(
            f"{folder / CONFIG}: expected a HookedTransformerConfig or its dict, got {type(raw).__name__}"
        )
    known = {f.name for f in dataclasses.fields(HookedTransformerConfig) if f.init}
    kwargs = {k: v for k, v in raw.items() if k in known}  # keys of other TransformerLens versions dropped
    kwargs["device"] = "cpu"
    if isinstance(kwargs.get("dtype"), str):  # "torch.float32", as InterpBench's metadata spells it
        dtype = getattr(torch, kwargs["dtype"].removeprefix("torch."), None)
        if not isinstance(dtype, torch.dtype):
            raise CircuitFileError(f"{folder / CONFIG}: unknown dtype {kwargs['dtype']!r}")
        kwargs["dtype"] = dtype
    try:
        return HookedTransformerConfig(**kwargs)
    except (TypeError, ValueError, AssertionError) as err:
        raise CircuitFileError(f"{folder / CONFIG}: not a usable model config ({type(err).__name__}: {err})") from None


def _folder(folder: str | Path) -> Path:
    path = Path(folder)
    if not path.is_dir():
        raise CircuitFileError(f"{path}: no such InterpBench case folder")
    missing = [f for f in (CONFIG, EDGES) if not (path / f).is_file()]
    if missing:
        raise CircuitFileError(f"{path}: not an InterpBench case folder (missing {', '.join(missing)})")
    return path


def _meta(folder: Path) -> dict[str, Any]:
    p = folder / META
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CircuitFileError(f"{p}: not JSON ({err})") from None
    if not isinstance(data, dict):
        raise CircuitFileError(f"{p}: expected a JSON object of training arguments")
    return data


def _truth(folder: Path, cfg: HookedTransformerConfig, meta: Mapping[str, Any]) -> GroundTruth:
    from circuits.formats.safe_pickle import safe_load

    graph = ComponentGraph(cfg.n_layers, cfg.n_heads, has_mlps=not cfg.attn_only)
    pairs = safe_load(folder / EDGES)
    if not isinstance(pairs, list | tuple):
        raise CircuitFileError(f"{folder / EDGES}: expected a list of (from, to) pairs, got {type(pairs).__name__}")
    try:
        nodes, edges = map_interpbench_edges(pairs, graph)
    except CircuitFileError as err:
        raise CircuitFileError(f"{folder / EDGES}: {err}") from None
    members = sorted((n for n in nodes if n.kind in (NodeKind.HEAD, NodeKind.MLP)), key=Node.sort_key)
    case = str(meta.get("case", folder.name))
    return GroundTruth(
        name=f"{PREFIX}{folder.name}",
        task=f"interpbench case {case}",
        variant=f"InterpBench ll ground truth, {len(pairs)} hook pairs in edges.pkl",
        model=ModelShape(str(cfg.model_name), cfg.n_layers, cfg.n_heads, cfg.d_model, bool(cfg.attn_only)),
        citation=CITATION,
        source=str(folder / EDGES),
        notes="edges into a component output (IOI style) count as its q, k and v inputs",
        groups={"circuit": tuple(str(n) for n in members)},
        edges=tuple(sorted(str(e) for e in edges)),
    )


def read_interpbench_truth(folder: str | Path) -> GroundTruth:
    """The ground truth of a case folder (reads the config and ``edges.pkl``, not the weights).

    Raises:
        CircuitFileError: not a case folder, or files that do not parse or map.
    """
    path = _folder(folder)
    return _truth(path, _config(path), _meta(path))


@dataclass(frozen=True)
class InterpBenchCase:
    """One InterpBench case, loaded.

    Attributes:
        name: the folder's name (InterpBench names folders by case id, e.g. ``3`` or ``ioi``).
        model: the HookedTransformer with the folder's weights, prepared for headgraph.
        truth: the ground truth as a published-style circuit description.
        circuit: ``truth`` on the model's graph.
        meta: the training arguments of ``meta.json`` (empty if absent).
    """

    name: str
    model: HookedTransformer
    truth: GroundTruth
    circuit: Circuit
    meta: Mapping[str, Any]


def load_interpbench(folder: str | Path) -> InterpBenchCase:
    """Load an InterpBench case folder: the model (weights checked key by key) and its circuit.

    Raises:
        CircuitFileError: not a case folder, weights that do not fit the config, or a circuit
            that does not map onto the model's graph.
    """
    path = _folder(folder)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise CircuitFileError(f"{path}: not an InterpBench case folder (missing {WEIGHTS})")
    cfg = _config(path)
    meta = _meta(path)
    truth = _truth(path, cfg, meta)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a file that is not a checkpoint
        raise CircuitFileError(f"{weights}: not a torch state dict ({type(err).__name__})") from None
    model = HookedTransformer(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CircuitFileError(f"{weights}: weights do not fit {CONFIG} ({first})") from None
    model = prepare_model_(model)
    return InterpBenchCase(path.name, model, truth, truth.circuit(graph_of(model)), meta)
