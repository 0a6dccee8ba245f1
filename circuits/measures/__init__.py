"""How good a circuit is: ROC against ground truth, faithfulness, regression, rank agreement."""
