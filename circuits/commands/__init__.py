"""Subcommands of the ``headgraph`` CLI, one module each.

A module here defines ``register(subparsers)``, which adds its parser and sets ``func`` to a
function ``(args) -> int``; :data:`circuits.cli.COMMANDS` lists the modules in help order.
"""
