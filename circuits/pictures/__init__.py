"""Pictures of results (attention patterns, faithfulness curves): the last step of the pipeline."""
