"""How good a circuit is: ROC against ground truth, faithfulness, regression against a stored circuit, rank agreement."""
