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
# # 03 · Arithmetic heads of SmolLM2-135M: how many matter, and what knocking them out does
#
# The default arithmetic task: three solved one-digit additions, then a query (`"5 + 2 = "` → `"7"`).
# The corrupt prompt changes one operand so the answer's digit changes; the metric is
# logit(answer) − logit(corrupt answer). Zhang et al. (2024, arXiv 2409.01659) report that a
# handful of heads carry arithmetic in larger models; here we measure it on the embedded model:
#
# 1. exact **activation patching** of all 270 heads, and what fraction of heads has a sizeable effect;
# 2. how many heads it takes to account for half (and 80%) of the summed |effect|;
# 3. **knockouts**: mean-ablate the top-k heads (every position) and read accuracy and logit
#    difference on the clean prompts, against k random heads (3 seeds).
#
# `HEADGRAPH_NB_PAIRS` (default 64) sets the number of pairs; `HEADGRAPH_NB_CONTROLS` (default 3)
# the random control sets per k. The committed outputs use the defaults (`make notebooks`).

# %%
import io
import os
import time

from IPython.display import Image, display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from circuits import Ablation, ActivationPatching, load_model, text_tokenizer
from circuits.analysis.knockout import head_means, knock_out
from circuits.discovery import baseline
from circuits.plot import draw_head_matrix
from tasks import get_task

PAIRS = int(os.environ.get("HEADGRAPH_NB_PAIRS", "64"))
CONTROLS = int(os.environ.get("HEADGRAPH_NB_CONTROLS", "3"))
THRESHOLD = 0.05  # a head "matters" when patching it moves the metric by ≥ 5% of the clean − corrupt gap
KS = (1, 2, 5, 10, 20)


def show(fig: Figure, dpi: int = 72) -> None:
    """Display a matplotlib Figure as a PNG (small enough to keep in the committed notebook)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    display(Image(buf.getvalue()))


start = time.perf_counter()
model = load_model("smollm2-135m", progress=False)
task = get_task("arithmetic")
data = task.dataset(text_tokenizer(model), PAIRS, seed=0)
print(f"{len(data)} pairs; example: {data.pairs[0].clean!r} → {data.pairs[0].answers[0]!r}")
print(f"corrupt: {data.pairs[0].corrupt!r} → {data.pairs[0].wrong[0]!r}")

# %% [markdown]
# ## 1. Activation patching of every head

# %%
scores = ActivationPatching()(model, data, task.metric, progress=False)
b = scores.baseline
print(
    f"clean logit diff {b.clean:.3f}, accuracy {b.clean_accuracy:.0%}; corrupt logit diff {b.corrupt:.3f} "
    f"(gap {b.gap:.3f}); patching took {scores.seconds:.0f} s"
)
ranked = [node for node, _ in scores.ranked()]
norm = dict(zip(scores.items, scores.normalized.tolist(), strict=True))
for rank, node in enumerate(ranked[:10], 1):
    print(f"{rank:2d}. {node}  normalized effect {norm[node]:+.3f}")

# %%
head_norm = [abs(norm[n]) for n in scores.graph.heads]
n_heads = len(head_norm)
matter = sum(v >= THRESHOLD for v in head_norm)
matter_neg = sum(norm[n] <= -THRESHOLD for n in scores.graph.heads)
abs_sorted = sorted(head_norm, reverse=True)
total = sum(abs_sorted)
cum = [sum(abs_sorted[: i + 1]) / total for i in range(n_heads)]
half = next(i + 1 for i, c in enumerate(cum) if c >= 0.5)
most = next(i + 1 for i, c in enumerate(cum) if c >= 0.8)
print(
    f"{matter} of {n_heads} heads ({matter / n_heads:.1%}) move the metric by ≥ {THRESHOLD:.0%} of the gap "
    f"({matter_neg} of them support the answer, i.e. negative scores)"
)
print(f"{half} heads ({half / n_heads:.1%}) carry 50% of the summed |effect|; {most} ({most / n_heads:.1%}) carry 80%")

fig = Figure(figsize=(13, 5), layout="constrained")
FigureCanvasAgg(fig)
left, right = fig.subplots(1, 2, width_ratios=[1.1, 1])
draw_head_matrix(
    left,
    scores.head_matrix(normalized=True),
    ranked=ranked[:10],
    title="arithmetic: normalized effect of patching each head\n(numbers: rank by |effect|)",
    label="Δ metric / (clean − corrupt)",
)
right.plot(range(1, n_heads + 1), cum, marker=".")
right.axhline(0.5, color="grey", linestyle=":")
right.axhline(0.8, color="grey", linestyle="--")
right.set_xscale("log")
right.set_xlabel("heads, by decreasing |effect| (log scale)")
right.set_ylabel("share of the summed |effect|")
right.set_title(f"50% of the |effect| in {half} heads, 80% in {most}", fontsize=10)
right.grid(True, which="both", alpha=0.3)
show(fig)

# %% [markdown]
# ## 2. Knocking out the top-k heads against k random heads
#
# Mean ablation: each knocked-out head's output is replaced at every position by its mean over the
# dataset's corrupt prompts. The random controls are drawn from the heads outside the top k.

# %%
means = head_means(model, data)
intact = baseline(model, data, task.metric)
knockouts = [
    knock_out(
        model, data, task.metric, ranked, k, ablation=Ablation.MEAN, means=means, controls=CONTROLS, intact=intact
    )
    for k in KS
]
print(f"intact: accuracy {intact.clean_accuracy:.0%}, logit diff {intact.clean:.2f}")
for ko in knockouts:
    ctrl_acc = sum(c.clean_accuracy for c in ko.control) / len(ko.control)
    ctrl_ld = sum(c.clean for c in ko.control) / len(ko.control)
    print(
        f"top {len(ko.heads):2d}: accuracy {ko.result.clean_accuracy:4.0%}, logit diff {ko.result.clean:+.2f}   |   "
        f"{len(ko.heads):2d} random heads: accuracy {ctrl_acc:4.0%}, logit diff {ctrl_ld:+.2f}"
    )

fig = Figure(figsize=(11, 4), layout="constrained")
FigureCanvasAgg(fig)
acc_ax, ld_ax = fig.subplots(1, 2)
for ax, field, label in ((acc_ax, "clean_accuracy", "accuracy"), (ld_ax, "clean", "logit diff")):
    ax.plot(KS, [getattr(ko.result, field) for ko in knockouts], marker="o", label="top-k heads (patching)")
    for i in range(CONTROLS):
        ax.plot(
            KS,
            [getattr(ko.control[i], field) for ko in knockouts],
            marker="x",
            color="grey",
            alpha=0.6,
            label="k random heads" if i == 0 else None,
        )
    ax.axhline(getattr(intact, field), color="black", linestyle="--", linewidth=1, label="intact model")
    ax.set_xscale("log")
    ax.set_xticks(KS, [str(k) for k in KS])
    ax.set_xlabel("heads knocked out (mean ablation)")
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.3)
acc_ax.axhline(0.1, color="red", linestyle=":", linewidth=1, label="chance (1 of 10 digits)")
acc_ax.legend(fontsize=8)
show(fig)

# %% [markdown]
# ## Finding
#
# The cell below prints the numbers of whichever run produced this notebook. The committed run (64
# pairs) found: the model solves 75% of the additions (logit diff 5.21, gap 11.5 to the corrupt
# prompts); only 7 of 270 heads (2.6%) move the metric by 5% of the gap or more, all of them
# supporting the answer (L20H8 −0.31, L23H0 −0.16, L21H2 −0.12, L24H5, L23H3, L14H2, L29H1); 5
# heads carry half the summed |effect|. Knocking out the top 5 by their mean output drops accuracy
# from 75% to 16% (logit diff 5.21 → 0.93) while 5 random heads leave 69%; the top 20 leave 6%
# against 74% for 20 random heads. Arithmetic in this model rests on a handful of mid-to-late heads
# (layers 14–29, most in 20–24), and removing them is not like removing any heads.

# %%
ko5 = next(ko for ko in knockouts if len(ko.heads) == 5)
ko_max = knockouts[-1]


def control_acc(ko):  # noqa: ANN001, ANN202 - mean accuracy of a knockout's random controls
    return sum(c.clean_accuracy for c in ko.control) / len(ko.control)


print(f"Finding ({len(data)} pairs, {time.perf_counter() - start:.0f} s):")
print(f"- the model solves {b.clean_accuracy:.0%} of the one-digit additions (logit diff {b.clean:.2f}).")
print(
    f"- {matter} of {n_heads} heads ({matter / n_heads:.1%}) have |normalized patching effect| ≥ {THRESHOLD}; "
    f"{half} heads ({half / n_heads:.1%}) carry half the summed |effect|, {most} carry 80%."
)
print("- top heads: " + ", ".join(f"{n} ({norm[n]:+.2f})" for n in ranked[:5]) + ".")
print(
    f"- knocking out the top 5 (mean ablation): accuracy {b.clean_accuracy:.0%} → {ko5.result.clean_accuracy:.0%}, "
    f"logit diff {intact.clean:.2f} → {ko5.result.clean:.2f}; 5 random heads: accuracy {control_acc(ko5):.0%}."
)
print(
    f"- knocking out the top {len(ko_max.heads)}: accuracy {ko_max.result.clean_accuracy:.0%} "
    f"(random {len(ko_max.heads)}: {control_acc(ko_max):.0%})."
)
