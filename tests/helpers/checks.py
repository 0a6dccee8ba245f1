"""Hand-written validation seen past the test run's runtime type checker (jaxtyping + beartype)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jaxtyping


def revalidate(settings: Any, **fields: object) -> None:
    """Run ``settings``' hand-written ``__post_init__`` checks on ``fields`` set past the constructor.

    The test run's runtime type checker rejects a wrongly typed argument before ``__post_init__``
    runs, so a test that accepts ``TypeError`` cannot see the hand-written check users rely on
    (they run without the checker). This sets the fields on a frozen instance and calls the check.
    """
    for name, value in fields.items():
        object.__setattr__(settings, name, value)
    settings.__post_init__()


@contextmanager
def unchecked() -> Iterator[None]:
    """Run the block as users run it: without the test run's runtime type checker (jaxtyping + beartype).

    Inside, a wrongly typed argument reaches the hand-written check (its own error and one-line
    message) instead of the checker's ``TypeCheckError``, so a test can require that check.
    """
    before = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", before)
