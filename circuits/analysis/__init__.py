"""Analyses of one model's heads: attention, direct logit attribution, head outputs, knockout, roles, code labels.

Pipeline: task → model → **analysis** (next to the discovery methods).
"""
