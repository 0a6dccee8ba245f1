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
# # 04 · Multiple-choice letters on SmolLM2-135M: correct-letter heads by direct logit attribution and patching
#
# The MCQA task (Lieberum et al. 2023; the small-model "Colors" format of Wiegreffe et al. 2024):
# three solved examples, then *"Phrase: The hat is blue. What color is the hat? Choices: A: blue
# B: pink The correct answer is:"* → *" A"*. The corrupt prompt swaps the options, so the correct
# letter becomes the competing token; the metric is logit(correct letter) − logit(other letter).
#
# **Caveat first: the embedded model is at chance on this task** (about 53% against 50% over the
# two letters in the task report). A circuit analysis of a behaviour the model does not have can
# only find what the heads *do* write, for example a fixed preference for one letter, not a
# mechanism for picking the right one. So this notebook measures, in logit units,
#
# 1. accuracy against chance, and how much of the logit difference is a letter preference;
# 2. **direct logit attribution** (DLA) of every head onto the correct-minus-wrong letter direction,
#    split into a part that follows the correct letter and a part that follows a fixed letter;
# 3. where the top DLA heads attend (Lieberum et al.'s correct-letter heads attend to the correct
#    option's letter);
# 4. **patching**: attribution patching (gradient estimate) of all heads, then exact activation
#    patching of a shortlist (top heads by |DLA| and by |attribution|), because exact patching of
#    every head on these 150-token prompts is slow on a CPU.
#
# `HEADGRAPH_NB_PAIRS` (default 64 pairs), `HEADGRAPH_NB_SHORTLIST` (default 12 heads) and
# `HEADGRAPH_NB_PATCH_PAIRS` (default 32: the first pairs, for exact patching) set the sizes; the
# committed outputs use the defaults (`make notebooks`).

# %%
import io
import os
import time

from IPython.display import Image, display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from circuits import ActivationPatching, load_model, text_tokenizer
from circuits.attention import attention_to_positions
from circuits.attention_plot import draw_attention_to_positions
from circuits.discovery import AttributionPatching, baseline
from circuits.logit_attribution import direct_logit_attribution
from circuits.plot import draw_head_matrix
from tasks import CandidateAccuracy, candidate_chance, get_task

PAIRS = int(os.environ.get("HEADGRAPH_NB_PAIRS", "64"))
SHORTLIST = int(os.environ.get("HEADGRAPH_NB_SHORTLIST", "12"))
PATCH_PAIRS = int(os.environ.get("HEADGRAPH_NB_PATCH_PAIRS", "32"))
SHOW = 4


def show(fig: Figure, dpi: int = 72) -> None:
    """Display a matplotlib Figure as a PNG (small enough to keep in the committed notebook)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    display(Image(buf.getvalue()))


start = time.perf_counter()
model = load_model("smollm2-135m", progress=False)
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
# ## 4. Patching: gradient estimate for all heads, exact for a shortlist
#
# Scores follow headgraph's sign convention: the change of the logit difference when the head's
# output is replaced by its value on the corrupt prompt (negative = the head supports the correct
# letter). With a clean − corrupt gap this small, *normalized* scores would divide by almost
# nothing, so they are shown in raw logit units.

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
# The cell below prints the numbers of whichever run produced this notebook. The committed run
# (64 pairs; exact patching on the first 32) found: 53% between the letters against 50% chance;
# the model prefers " B" by 0.64 logits whatever the answer, while its letter-independent,
# correct-letter signal is −0.04 logits (the clean − corrupt gap is 0.14). The heads write the
# same: summed over heads, |DLA| onto the letter preference (23.5) is 9 times the |DLA| onto the
# correct letter (2.6), and the heads with the largest DLA onto correct − wrong (L23H0 +0.40, L23H1
# +0.37, L28H0 −0.19, L28H2 +0.16) write letter preferences 3 to 15 times larger (L28H0 toward
# " A" +2.46, L23H1 toward " B" −2.23). L23H0 is the closest thing to a correct-letter head
# (Lieberum et al.): largest exact patching effect of the shortlist (−0.17 logits), attention 0.24
# to the correct letter against 0.16 to the wrong one. But its signal is small and cancelled by
# the rest, which is why the model is at chance: these are heads of a behaviour the model does not
# have, and are read as such.

# %%
top_exact = ranked_exact[0]
print(f"Finding ({len(data)} pairs, {time.perf_counter() - start:.0f} s):")
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
    f"- largest exact patching effect among {len(shortlist)} shortlisted heads ({len(patch_data)} pairs): {top_exact} "
    f"({exact_of[top_exact]:+.3f} logits); attention of the top DLA head {top_dla[0]} to the correct letter "
    f"{att.of(top_dla[0], 'correct_label'):.2f}, to the wrong letter {att.of(top_dla[0], 'wrong_label'):.2f}."
)
