"""What the tests share, in one place: no test file imports another test file.

* :mod:`tests.helpers.models`: tiny cfg-built models (the default, Gemma-3-shaped, SmolLM2-vocabulary).
* :mod:`tests.helpers.data`: random prompt-pair datasets and a deterministic toy tokenizer.
* :mod:`tests.helpers.checks`: running hand-written validation without the test run's type checker.
* :mod:`tests.helpers.oracles`: brute-force activation and edge patching, rank correlation.
* :mod:`tests.helpers.sae`: the planted model whose only live heads SAE methods must find.
* :mod:`tests.helpers.sweep`, :mod:`tests.helpers.view`: sweep specs and Ray clusters; synthetic head graphs.

Fixtures (``tiny_model``, ``smollm2``, ...) live in ``tests/conftest.py``. The tests sit in tiers:
``tests/unit`` (tiny and planted models, seconds), ``tests/model`` (the real offline models, every test
marked ``slow``), ``tests/e2e`` (the command line, notebooks, browser, Ray clusters).
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository root (for notebooks, docs and subprocesses run from it)."""
