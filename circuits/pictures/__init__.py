"""Pictures of results (attention patterns, faithfulness curves, positions): the last step of the pipeline."""
