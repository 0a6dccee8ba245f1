"""Analyses of one model's heads (attention, direct logit attribution, head outputs, knockout, head roles): task → model → **analysis**."""
