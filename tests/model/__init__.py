"""Model tier: the real offline models (SmolLM2, Gemma-3-270M, Qwen2.5-Coder); every test is marked slow."""
