"""``headgraph view A [B]``: one self-contained, interactive HTML page of a circuit file (and its diff with B).

    headgraph view out/ioi/circuit.json                        # writes out/ioi/circuit.html
    headgraph view out/ioi/circuit.json --model auto --prompts 3   # also click a head: its attention
    headgraph view a/circuit.json b/circuit.json --out diff.html   # B against A, as headgraph compare

The page (:mod:`circuits.view`) lays the head graph out by layer, colours nodes by signed effect,
draws kept edges with width by score, and has a top-k / threshold slider that selects and prunes as
:mod:`circuits.selection` does. Read from beside A when present: ``faithfulness.json`` (written by
``headgraph evaluate``; its curve is drawn) and ``attention.json`` (stored attention patterns).
``--model`` loads a model (``auto``: the file's) to compute the attention of the circuit's heads on
the first ``--prompts`` prompts of the file's task and stores them as ``attention.json`` beside A.
Without ``--model`` nothing is loaded and nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from circuits.commands.common import add_device_option, model_device
from circuits.errors import CircuitFileError, HeadgraphError


def run(args: argparse.Namespace) -> int:
    from circuits.measures.regression import read_circuit
    from circuits.view import AttentionExamples, page_data, write_html
    from circuits.view.data import annotations_from_json

    if args.prompts <= 0 or args.max_heads <= 0 or args.top_k <= 0:
        raise HeadgraphError("--prompts, --max-heads and --top-k must be positive")
    a = read_circuit(args.a)
    b = read_circuit(args.b) if args.b else None
    folder = Path(args.a).parent
    faith_path = Path(args.faithfulness) if args.faithfulness else folder / "faithfulness.json"
    faithfulness = _read_json(faith_path) if args.faithfulness or faith_path.exists() else None
    annotations = annotations_from_json(_read_json(Path(args.annotations)), a.model.name) if args.annotations else None
    att_path = Path(args.attention) if args.attention else folder / "attention.json"
    if args.model:
        attention = _compute_attention(a, args)
        attention.save(att_path)
        print(f"stored the attention of {len(attention.heads)} heads on {len(attention.tokens)} prompts in {att_path}")
    elif args.attention or att_path.exists():
        attention = AttentionExamples.load(att_path)
    else:
        attention = None
    data = page_data(
        a, b, attention=attention, faithfulness=faithfulness, annotations=annotations, diff_top_k=args.top_k
    )
    out = Path(args.out) if args.out else Path(args.a).with_suffix(".diff.html" if b else ".html")
    write_html(data, out)
    n_items = len(data["order"])
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB; {n_items} scored {data['level']}s"
          f"{', diff with ' + str(args.b) if b else ''}{', faithfulness curve' if faithfulness else ''}"
          f"{', attention' if attention else ''})")  # fmt: skip
    return 0


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CircuitFileError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CircuitFileError(f"{path}: not JSON ({err})") from None


def _compute_attention(hg: Any, args: argparse.Namespace) -> Any:
    """Load the model and store the attention of the circuit's heads (the strongest ``--max-heads``)."""
    from circuits.graph import NodeKind
    from circuits.model import load_model, model_info
    from circuits.view import task_examples

    name = hg.model.name if args.model == "auto" else args.model
    nodes = hg.scores.to_nodes()
    rank = {n: r for r, (n, _) in enumerate(nodes.ranked())}
    heads = sorted((n for n in hg.circuit.nodes if n.kind is NodeKind.HEAD), key=lambda n: rank.get(n, len(rank)))
    if not heads:
        raise HeadgraphError(f"{args.a}: the file's circuit has no heads to show the attention of")
    print(f"loading {name} ...", flush=True)
    model = load_model(name, device=model_device(args), progress=not args.quiet)
    if model_info(model).config_hash != hg.model.config_hash:
        raise HeadgraphError(f"{args.a} was computed on another model than {name!r}")
    return task_examples(model, hg.task.name, hg.task.settings, args.prompts, hg.task.seed, heads[: args.max_heads])


def register(sub: Any) -> None:
    v = sub.add_parser("view", help="write an interactive HTML page of a circuit (and its diff with a second)")
    v.add_argument("a", help="circuit file (headgraph discover) or golden file")
    v.add_argument("b", nargs="?", default=None, help="a second circuit file: the page adds B's diff against A")
    v.add_argument("--out", default=None, help="HTML file (default: A with .html, or .diff.html with B)")
    v.add_argument("--model", default=None, help="load this model ('auto': A's) to store attention patterns")
    v.add_argument("--prompts", type=int, default=3, help="example prompts of the attention patterns (default: 3)")
    v.add_argument("--max-heads", type=int, default=48, help="heads whose attention is stored (default: 48)")
    v.add_argument("--attention", default=None, help="attention file (default: attention.json beside A)")
    v.add_argument("--faithfulness", default=None, help="faithfulness file (default: faithfulness.json beside A)")
    v.add_argument(
        "--annotations",
        default=None,
        help='JSON {"L9H9": {"role": "...", "labels": ["..."]}} or a roles.json of compare --roles',
    )
    v.add_argument("--top-k", type=int, default=20, help="heads compared in the diff (default: 20)")
    add_device_option(v)
    v.add_argument("--quiet", action="store_true", help="no progress bars")
    v.set_defaults(func=run)
