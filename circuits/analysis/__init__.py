"""Analyses of one model's heads: attention, direct logit attribution, head outputs, knockout, head roles.

Pipeline: task → model → **analysis** (next to the discovery methods).
"""
