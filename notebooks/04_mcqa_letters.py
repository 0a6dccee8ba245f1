# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Multiple-choice letters: correct-letter heads (Lieberum et al.) by direct logit attribution and patching
#
# The MCQA task (Lieberum et al. 2023; the small-model "Colors" format of Wiegreffe et al. 2024):
# three solved examples, then *"Phrase: The hat is blue. What color is the hat? Choices: A: blue
# B: pink The correct answer is:"* → *" A"*. The corrupt prompt swaps the options, so the correct
# letter becomes the competing token; the metric is logit(correct letter) − logit(other letter).
#
# Lieberum et al. (2023, arXiv 2307.09458) found, in Chinchilla-70B, "correct letter" heads: late
# heads that attend from the final position to the correct option's letter and write that letter to
# the logits. The model here is **Qwen2.5-Coder-1.5B-Instruct**, which does this task (88–100%
# between the letters in the task report), so its heads can be read as a mechanism; on SmolLM2-135M,
# which is at chance, the same analysis finds only a letter preference (the notebook's earlier run,
# quoted in the Finding). It measures, in logit units,
#
# 1. accuracy against chance, and how much of the logit difference is a fixed letter preference;
# 2. **direct logit attribution** (DLA) of every head onto the correct-minus-wrong letter direction,
#    split into a part that follows the correct letter and a part that follows a fixed letter;
# 3. where the top DLA heads attend, and **letter vs content**: each top head's DLA split by the
#    token it reads (`circuits.model.head_direct_logits_by_key`, exact: the parts add up to the
#    head's DLA): the correct option's *letter*, its *content* (the colour), the other options, the
#    stated colour, elsewhere. A correct-letter head in Lieberum's sense reads the letter;
# 4. **patching**: attribution patching (gradient estimate) of all heads, then exact activation
#    patching of a shortlist (top heads by |DLA| and by |attribution|), because exact patching of
#    every head of a 1.5B model is hours on a CPU.
#
# `HEADGRAPH_NB_MODEL` (default `qwen2.5-coder-1.5b`) and `HEADGRAPH_NB_DTYPE` (default `bfloat16`)
# choose the model; `HEADGRAPH_NB_PAIRS` (default 32 pairs), `HEADGRAPH_NB_SHORTLIST` (default 12
# heads) and `HEADGRAPH_NB_PATCH_PAIRS` (default 16: the first pairs, for exact patching) set the
# sizes; the committed outputs use the defaults (`make notebooks`; CI runs it small on the 0.5B).

# %%
import io
import os
import time

import torch
from IPython.display import Image, display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from circuits import ActivationPatching, load_model, text_tokenizer
from circuits.analysis.attention import attention_to_positions
from circuits.analysis.logit_attribution import direct_logit_attribution
from circuits.discovery import AttributionPatching, baseline
from circuits.model import head_direct_logits_by_key
from circuits.pictures.attention_plot import draw_attention_to_positions
from circuits.plot import draw_head_matrix
from tasks import CandidateAccuracy, candidate_chance, get_task

MODEL = os.environ.get("HEADGRAPH_NB_MODEL", "qwen2.5-coder-1.5b")
DTYPE = os.environ.get("HEADGRAPH_NB_DTYPE", "bfloat16")
PAIRS = int(os.environ.get("HEADGRAPH_NB_PAIRS", "32"))
SHORTLIST = int(os.environ.get("HEADGRAPH_NB_SHORTLIST", "12"))
PATCH_PAIRS = int(os.environ.get("HEADGRAPH_NB_PATCH_PAIRS", "16"))
SHOW = 4


def show(fig: Figure, dpi: int = 72) -> None:
    """Display a matplotlib Figure as a PNG (small enough to keep in the committed notebook)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    display(Image(buf.getvalue()))


start = time.perf_counter()
model = load_model(MODEL, dtype=DTYPE, progress=False)
print(f"{MODEL} in {DTYPE}: {model.cfg.n_layers} layers × {model.cfg.n_heads} heads")
task = get_task("mcqa")
data = task.dataset(text_tokenizer(model), PAIRS, seed=0)
print(f"{len(data)} pairs of {data.clean.shape[1]} tokens at most; the query of the first:")
print(data.pairs[0].clean[-120:], "→", repr(data.pairs[0].answers[0]))

# %% [markdown]
# ## 1. Accuracy against chance, and letter preference

# %%
b = baseline(model, data, task.metric)
cand = baseline(model, data, CandidateAccuracy())
chance = float(candidate_chance(data.targets).mean())
answer_a = [p.meta["answer_index"] == 0 for p in data.pairs]
dla = direct_logit_attribution(model, data)
ld = dla.logit_diff
n_a = sum(answer_a)
ld_a = float(ld[[i for i, a in enumerate(answer_a) if a]].mean()) if n_a else float("nan")
ld_b = float(ld[[i for i, a in enumerate(answer_a) if not a]].mean()) if n_a < len(data) else float("nan")
print(
    f"accuracy over the whole vocabulary {b.clean_accuracy:.0%}; between the letters {cand.clean:.0%} "
    f"(chance {chance:.0%}, {len(data)} pairs)"
)
print(f"logit diff: clean {b.clean:+.3f}, corrupt {b.corrupt:+.3f} (gap {b.gap:+.3f})")
print(
    f"mean logit diff when the answer is A: {ld_a:+.3f} ({n_a} pairs); when it is B: {ld_b:+.3f} "
    f"({len(data) - n_a} pairs)"
)
print(
    f"→ preference for ' A' over ' B' (half the difference; negative = toward ' B'): {(ld_a - ld_b) / 2:+.3f}; "
    f"letter-independent part (mean of the two): {(ld_a + ld_b) / 2:+.3f}"
)

# %% [markdown]
# ## 2. Direct logit attribution of every head
#
# For each head: its output at the answer position, through the final norm (scale frozen), dotted
# with W_U[correct letter] − W_U[other letter]. Averaged over all pairs this is the head's
# *correct-letter* signal. Its *letter* signal is half the difference between its mean on pairs whose
# answer is A and on pairs whose answer is B: a head that always writes " A" has a large letter
# signal and no correct-letter signal.

# %%
sign = [1.0 if a else -1.0 for a in answer_a]
correct_part = dla.mean()  # (layer, head)
letter_part = (dla.values * dla.values.new_tensor(sign)[:, None, None]).mean(0)  # toward ' A'
ranked_dla = [n for n, _ in dla.ranked()]
fig = Figure(figsize=(13, 5), layout="constrained")
FigureCanvasAgg(fig)
left, right = fig.subplots(1, 2)
draw_head_matrix(
    left, correct_part, ranked=ranked_dla[:10], title="DLA onto correct − wrong letter (mean)", label="logit units"
)
draw_head_matrix(right, letter_part, title="DLA onto ' A' − ' B' (letter preference)", label="logit units")
show(fig)
for n in ranked_dla[:10]:
    print(
        f"{n}: correct-letter {float(correct_part[n.layer, n.head]):+.3f}, "
        f"letter (toward A) {float(letter_part[n.layer, n.head]):+.3f}"
    )
total_correct = float(correct_part.abs().sum())
total_letter = float(letter_part.abs().sum())
print(f"summed |DLA| over heads: correct-letter {total_correct:.2f}, letter preference {total_letter:.2f}")

# %% [markdown]
# ## 3. Where the top DLA heads attend

# %%
top_dla = ranked_dla[:SHOW]
att = attention_to_positions(model, data, top_dla)
keep = ("first token", "correct_label", "wrong_label", "correct_option", "stated_color")
fig = Figure(figsize=(10, 4), layout="constrained")
FigureCanvasAgg(fig)
ax = fig.subplots()
draw_attention_to_positions(ax, att)
ax.set_title(f"top {SHOW} heads by |DLA|: attention from the answer position", fontsize=10)
show(fig)
for h in top_dla:
    print(f"{h}: " + ", ".join(f"{n} {att.of(h, n):.2f}" for n in keep))

# %% [markdown]
# ### Letter vs content
#
# Each top head's DLA, split by the key position it reads from (the parts add up to the head's
# DLA). "correct letter" is the correct option's letter token, "correct content" its colour; "other
# options" are the other lines' letters and colours; "stated colour" is the colour in the phrase;
# "first token" is the attention sink (a head that attends there writes a near-constant vector: in
# DLA it shows as a fixed letter preference, not as a correct-letter signal).

# %%
GROUPS = ("correct letter", "correct content", "other options", "stated colour", "first token", "elsewhere")
split = {h: dict.fromkeys(GROUPS, 0.0) for h in top_dla}
for batch in data.batches(16):
    t = batch.targets
    parts = head_direct_logits_by_key(
        model, batch.clean, batch.answer_pos, t.answers[:, 0], t.wrong[:, 0], [(h.layer, h.head) for h in top_dla]
    ).double()  # (b, head, key)
    rows = torch.arange(len(batch))
    letters = [n for n in batch.positions if n.startswith("label_")]
    options = [n for n in batch.positions if n.startswith("option_")]
    for i, h in enumerate(top_dla):
        p = parts[:, i]
        c_letter = p[rows, batch.positions["correct_label"]]
        c_content = p[rows, batch.positions["correct_option"]]
        others = sum(p[rows, batch.positions[n]] for n in letters + options) - c_letter - c_content
        stated, first = p[rows, batch.positions["stated_color"]], p[:, 0]
        rest = p.sum(-1) - c_letter - c_content - others - stated - first
        for g, v in zip(GROUPS, (c_letter, c_content, others, stated, first, rest), strict=True):
            split[h][g] += float(v.sum()) / len(data)
fig = Figure(figsize=(9, 3.8), layout="constrained")
FigureCanvasAgg(fig)
ax = fig.subplots()
width = 0.8 / len(GROUPS)
for j, g in enumerate(GROUPS):
    ax.bar([i + j * width for i in range(len(top_dla))], [split[h][g] for h in top_dla], width, label=g)
ax.set_xticks([i + 0.4 - width / 2 for i in range(len(top_dla))], [str(h) for h in top_dla])
ax.axhline(0, color="black", linewidth=0.6)
ax.set_ylabel("DLA onto correct − wrong letter (logit units)")
ax.set_title("top heads' DLA by the token they read", fontsize=10)
ax.legend(fontsize=7)
show(fig)
for h in top_dla:
    print(f"{h}: " + ", ".join(f"{g} {split[h][g]:+.3f}" for g in GROUPS))

# %% [markdown]
# ## 4. Patching: gradient estimate for all heads, exact for a shortlist
#
# Scores follow headgraph's sign convention: the change of the logit difference when the head's
# output is replaced by its value on the corrupt prompt (negative = the head supports the correct
# letter). They are shown in raw logit units (on a model at chance the clean − corrupt gap is
# near zero and normalized scores would divide by almost nothing).

# %%
attribution = AttributionPatching()(model, data, task.metric, progress=False)
ranked_attr = [n for n, _ in attribution.ranked()]
shortlist = list(dict.fromkeys([*ranked_dla[: SHORTLIST // 2], *ranked_attr]))[:SHORTLIST]
patch_data = data.select(slice(0, PATCH_PAIRS))
exact = ActivationPatching(heads=tuple(str(n) for n in shortlist))(model, patch_data, task.metric, progress=False)
exact_of = dict(zip(exact.items, exact.values.tolist(), strict=True))
attr_of = dict(zip(attribution.items, attribution.values.tolist(), strict=True))
ranked_exact = sorted(shortlist, key=lambda n: -abs(exact_of[n]))
print(
    f"attribution patching ({len(data)} pairs) took {attribution.seconds:.0f} s; exact patching of "
    f"{len(shortlist)} heads ({len(patch_data)} pairs) {exact.seconds:.0f} s"
)
for n in ranked_exact[:10]:
    print(
        f"{n}: exact Δ logit diff {exact_of[n]:+.3f}, attribution {attr_of[n]:+.3f}, "
        f"DLA {float(correct_part[n.layer, n.head]):+.3f}"
    )

fig = Figure(figsize=(6, 5), layout="constrained")
FigureCanvasAgg(fig)
ax = fig.subplots()
xs = [float(correct_part[n.layer, n.head]) for n in shortlist]
ys = [exact_of[n] for n in shortlist]
ax.scatter(xs, ys)
for n, x, y in zip(shortlist, xs, ys, strict=True):
    ax.annotate(str(n), (x, y), fontsize=7)
ax.axhline(0, color="grey", linewidth=1)
ax.axvline(0, color="grey", linewidth=1)
ax.set_xlabel("DLA onto correct − wrong letter (logit units)")
ax.set_ylabel("exact patching: Δ logit diff when patched")
ax.set_title("shortlisted heads: direct effect against total effect", fontsize=10)
show(fig)

# %% [markdown]
# ## Finding
#
# The cell below prints the numbers of whichever run produced this notebook (the committed one:
# the defaults above). For comparison, the same analysis on SmolLM2-135M (64 pairs; this notebook's
# previous committed run) found a model at chance (53% between the letters against 50%) whose heads
# write a fixed letter preference 9 times larger than any correct-letter signal (summed |DLA| 23.5
# against 2.6); its nearest correct-letter head, L23H0, had an exact patching effect of −0.17 logits.

# %%
top_exact = ranked_exact[0]
reads_letter = [h for h in top_dla if abs(split[h]["correct letter"]) >= 0.5 * sum(abs(v) for v in split[h].values())]
print(f"Finding ({MODEL} {DTYPE}, {len(data)} pairs, {time.perf_counter() - start:.0f} s):")
print(
    f"- accuracy between the letters {cand.clean:.0%} against chance {chance:.0%} "
    f"(whole vocabulary {b.clean_accuracy:.0%}); clean − corrupt logit-diff gap {b.gap:+.3f}."
)
print(
    f"- preference for ' A' over ' B' {(ld_a - ld_b) / 2:+.3f} logits (negative = toward ' B') against a "
    f"letter-independent (correct-letter) part {(ld_a + ld_b) / 2:+.3f}."
)
print(
    "- top heads by |DLA| onto correct − wrong: "
    + ", ".join(
        f"{n} ({float(correct_part[n.layer, n.head]):+.2f}, letter {float(letter_part[n.layer, n.head]):+.2f})"
        for n in top_dla
    )
    + f"; summed |DLA| correct-letter {total_correct:.2f} vs letter preference {total_letter:.2f}."
)
print(
    "- attention from the answer position, correct / wrong letter: "
    + ", ".join(f"{h} {att.of(h, 'correct_label'):.2f} / {att.of(h, 'wrong_label'):.2f}" for h in top_dla)
    + "."
)
print(
    f"- letter vs content: {len(reads_letter)} of the top {len(top_dla)} DLA heads take at least half of their"
    f" (absolute) DLA from the correct option's letter token"
    + (f" ({', '.join(map(str, reads_letter))})" if reads_letter else "")
    + "; "
    + ", ".join(
        f"{h}: letter {split[h]['correct letter']:+.2f}, content {split[h]['correct content']:+.2f}" for h in top_dla
    )
    + "."
)
print(
    f"- largest exact patching effect among {len(shortlist)} shortlisted heads ({len(patch_data)} pairs): {top_exact} "
    f"({exact_of[top_exact]:+.3f} logits, DLA {float(correct_part[top_exact.layer, top_exact.head]):+.3f})."
)
