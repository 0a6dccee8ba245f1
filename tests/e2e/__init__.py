"""End-to-end tier: the command line, the notebooks, the browser, Ray clusters."""
