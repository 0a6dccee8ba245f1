"""Side checks of a stored repair run: what the chosen heads' edit does when it carries no answer information.

Run: ``.venv/bin/python bench/repair_side_checks.py [--result docs/repair/repair.json] [--threads 1]``.

The repair's FORCE edit (:mod:`circuits.repair.edits`) sends the chosen heads' attention to the
*wrong* candidates' tokens, so it is told which candidates are wrong: an oracle edit, as in Merullo
et al. (2023, §5). This script re-evaluates, on the same held-out target prompts as the stored run
(its model, task, ``n`` and seed), the chosen heads under edits that carry no such information or
carry it the other way:

* forced onto *all* candidates (what Merullo describes the misdirected heads doing; no label used);
* forced onto the *answer* (the opposite oracle: suppression heads should then hurt);
* mean-ablated at the answer position;
* the recipe restricted to heads both circuits share (``--candidates shared``): the shared eligible
  heads ranked by misdirection, ``k = 1 … 4``, forced onto the wrong candidates. Not a selection:
  every ``k`` is reported on the held-out prompts.

Also counts the top token over the whole vocabulary before and after the chosen edit (why the
vocabulary accuracy can stay put while the candidate accuracy rises). Prints markdown (and writes
it to ``--out``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from pathlib import Path

import torch

from circuits.graph import Node
from circuits.interventions import intervene
from circuits.model import load_model, run_to_logits, text_tokenizer
from circuits.repair import AnswerRole, EditKind, HeadEdit, evaluate_edits, role_positions
from tasks import get_task


def _node(name: str) -> Node:
    layer, head = name[1:].split("H")
    return Node.of_head(int(layer), int(head))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--result", default="docs/repair/repair.json")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="docs/repair/side-checks.md")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    stored = json.loads(Path(args.result).read_text())
    argv = stored["command"].split()
    n, seed = int(argv[argv.index("--n") + 1]), int(argv[argv.index("--seed") + 1])
    chosen = tuple(_node(h) for h in stored["chosen"]["heads"])
    shared = [h for h in stored["heads"] if h["shared"] and h["eligible"]]
    shared_ranked = [_node(h["head"]) for h in sorted(shared, key=lambda h: -h["misdirection"])]

    start = time.perf_counter()
    model = load_model(stored["model"], progress=False)
    target = get_task(stored["target"]).dataset(text_tokenizer(model), n, seed=seed)
    oracle = HeadEdit(chosen, EditKind.FORCE, AnswerRole.WRONG)
    edits: list[HeadEdit | None] = [
        None,
        oracle,
        HeadEdit(chosen, EditKind.FORCE, AnswerRole.CANDIDATES),
        HeadEdit(chosen, EditKind.FORCE, AnswerRole.ANSWER),
        HeadEdit(chosen, EditKind.ABLATE),
    ]
    edits += [
        HeadEdit(tuple(shared_ranked[:k]), EditKind.FORCE, AnswerRole.WRONG)
        for k in range(1, min(4, len(shared_ranked)) + 1)
    ]
    outcomes = evaluate_edits(model, target, edits, batch_size=stored["config"]["batch_size"], progress=True)
    with torch.inference_mode():
        top_before = run_to_logits(model, target.clean, target.answer_pos).argmax(-1)
        with intervene(model, *oracle.interventions(target, role_positions(target), {})):
            top_after = run_to_logits(model, target.clean, target.answer_pos).argmax(-1)
    tok = text_tokenizer(model)
    tops = {
        w: collections.Counter(tok.decode(int(t)) for t in ts)
        for w, ts in (("before", top_before), ("after", top_after))
    }
    seconds = time.perf_counter() - start

    notes = ["model as it is", "the stored run's chosen edit (oracle: told the wrong colours)",
             "no answer information", "opposite oracle", "no answer information",
             *["shared heads only" for _ in edits[5:]]]  # fmt: skip
    lines = [
        f"# Side checks of the repair {stored['source']} → {stored['target']} on {stored['model']}",
        "",
        f"`.venv/bin/python bench/repair_side_checks.py --result {args.result} --threads {args.threads or 'default'}`",
        "",
        f"{n} held-out {stored['target']} prompts (seed {seed}, the stored run's target split); {seconds:.0f} s;"
        f" load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| edit | note | logit diff | accuracy (vocab) | accuracy (candidates) |",
        "|---|---|---|---|---|",
    ]
    for edit, note, o in zip(edits, notes, outcomes, strict=True):
        label = "none (before)" if edit is None else edit.label
        lines.append(f"| {label} | {note} | {o.metric:+.3f} | {o.accuracy:.1%} | {o.candidate_accuracy:.1%} |")
    lines += ["", f"Top token over the vocabulary (counts of {n} prompts), before and after {oracle.label}:", ""]
    lines += [f"* {w}: " + ", ".join(f"`{t!r}` {c}" for t, c in cnt.most_common(8)) for w, cnt in tops.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
