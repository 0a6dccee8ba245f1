"""Building prompts piece by piece while recording where the named pieces are.

Every task's prompt is a concatenation of fixed text and sampled words; discovery methods need the
token positions of some of those words (IOI's ``S2``, Colored Objects' queried object, ...). A
:class:`Prompt` appends text and remembers the character span of each named piece; validation in
:mod:`tasks.base` later maps each span to the token that starts it.

A named piece's span starts at its first character that is not a space: tokenizers that fold the
leading space into the word (``" Mary"``) and those that give the space its own token (SmolLM2's
``" 7"`` → ``" "``, ``"7"``) both find the word's first token there.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Prompt", "article"]


@dataclass
class Prompt:
    """Text under construction plus the character spans of its named pieces.

    Examples:
        >>> p = Prompt().add("Then,").add(" Mary", "IO").add(" and John")
        >>> p.text, p.spans["IO"], p.text[slice(*p.spans["IO"])]
        ('Then, Mary and John', (6, 10), 'Mary')
    """

    text: str = ""
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, piece: str, name: str | None = None) -> Prompt:
        """Append ``piece``; when ``name`` is given, record its span (leading spaces excluded)."""
        if name is not None:
            if name in self.spans:
                raise ValueError(f"span {name!r} is already recorded")
            stripped = piece.lstrip(" ")
            start = len(self.text) + len(piece) - len(stripped)
            self.spans[name] = (start, start + len(stripped))
        self.text += piece
        return self

    def extend(self, other: Prompt) -> Prompt:
        """Append another prompt, keeping its named spans (shifted to their new place)."""
        for name, (start, end) in other.spans.items():
            if name in self.spans:
                raise ValueError(f"span {name!r} is already recorded")
            self.spans[name] = (start + len(self.text), end + len(self.text))
        self.text += other.text
        return self

    def fill(self, template: str, values: Mapping[str, str | Prompt], names: Mapping[str, str] | None = None) -> Prompt:
        """Append ``template`` with its ``{key}`` fields filled from ``values``.

        A value that is a :class:`Prompt` brings its own spans; ``names`` maps a field to the span
        name its (string) value is recorded under.

        Examples:
            >>> p = Prompt().fill("{a} + {b} =", {"a": "3", "b": "5"}, {"b": "B"})
            >>> p.text, p.spans
            ('3 + 5 =', {'B': (4, 5)})
        """
        names = names or {}
        for literal, key, _spec, _conv in string.Formatter().parse(template):
            self.add(literal)
            if key is None:
                continue
            value = values[key]
            if isinstance(value, Prompt):
                self.extend(value)
            else:
                self.add(value, names.get(key))
        return self


def article(word: str) -> str:
    """The indefinite article for ``word`` by its first letter (as Merullo et al.'s generator does).

    Examples:
        >>> article("orange"), article("red")
        ('an', 'a')
    """
    return "an" if word[:1].lower() in "aeiou" else "a"
