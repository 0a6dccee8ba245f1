"""The layering the architecture pass set up (issue 17), checked on the source so it cannot regress.

* The edge engine (:mod:`circuits.engine`: ablation vocabulary, sender/receiver layout, edge
  ablation) sits one layer under the discovery methods: only the modules that *run* methods (the
  CLI, the pipeline, workflows, registry users) import :mod:`circuits.discovery`.
* Architecture knowledge stays in the model adapter: no ``has_post_norm`` outside :mod:`circuits.model`.
* The old import paths of moved modules still work, with a DeprecationWarning, and give the same objects.
"""

from __future__ import annotations

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("circuits", "saes", "tasks")

METHOD_USERS = {
    "circuits/__init__.py",
    "circuits/cli.py",
    "circuits/pipeline.py",
    "circuits/seed/stages.py",
    "circuits/seed/refusal.py",
    "circuits/analysis/code_labels.py",
    "circuits/repair/workflow.py",
    "circuits/groundtruth/benchmark.py",
    "circuits/groundtruth/golden.py",
}
"""Modules outside the methods package that run methods (besides commands/ and sweep/)."""
METHOD_USER_FOLDERS = ("circuits/discovery/", "circuits/commands/", "circuits/sweep/")


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (absolute names)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_only_method_users_import_the_methods_package() -> None:
    offenders = {
        _rel(p): sorted(m for m in _imports(p) if m == "circuits.discovery" or m.startswith("circuits.discovery."))
        for p in _sources()
        if _rel(p) not in METHOD_USERS and not _rel(p).startswith(METHOD_USER_FOLDERS)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_engine_imports_no_method() -> None:
    engine = [p for p in _sources() if _rel(p).startswith("circuits/engine/")]
    assert engine, "circuits/engine is missing"
    for p in engine:
        assert not [m for m in _imports(p) if m.startswith("circuits.discovery")], _rel(p)


def test_post_norm_knowledge_stays_in_the_model_adapter() -> None:
    leaks = []
    for p in _sources():
        if _rel(p).startswith("circuits/model/"):
            continue
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
            aliases = [a.name for a in node.names] if isinstance(node, ast.ImportFrom | ast.Import) else []
            if name == "has_post_norm" or "has_post_norm" in aliases:
                leaks.append(f"{_rel(p)}:{node.lineno}")
    assert leaks == []


ARCH_READS_PENDING = {
    "circuits/formats/interpbench.py": "cfg.attn_only of a file's HookedTransformerConfig (no model is loaded)",
}
"""Files still reading architecture fields directly, each with why: the list may only shrink."""


def _architecture_reads(path: Path) -> list[str]:
    """``model.W_O`` / ``model.cfg.attn_only`` / ``cfg.attn_only`` reads in ``path`` (``file:line``)."""
    return [f"{_rel(path)}:{line}" for line in _read_lines(path.read_text(encoding="utf-8"))]


def _read_lines(source: str) -> list[int]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute) or node.attr not in ("W_O", "attn_only"):
            continue
        base = ast.unparse(node.value)
        if base in ("model", "cfg", "model.cfg") or base.endswith((".model", ".model.cfg")):
            found.append(node.lineno)
    return found


def test_architecture_fields_are_read_only_in_the_adapter() -> None:
    """``W_O`` and ``attn_only`` are the adapter's (:func:`circuits.model.output_weights`, ``has_mlps``)."""
    reads = [r for p in _sources() if not _rel(p).startswith("circuits/model/") for r in _architecture_reads(p)]
    assert sorted({r.split(":")[0] for r in reads} - set(ARCH_READS_PENDING)) == [], reads


def test_the_architecture_check_sees_a_read() -> None:
    """The check above can fail: planted reads are found, other attributes are not."""
    source = "def f(model, w):\n    return model.W_O, model.cfg.attn_only, w.W_O, self.model.W_O\n"
    assert _read_lines(source) == [2, 2, 2]


def test_the_import_check_sees_a_nested_methods_import(tmp_path: Path) -> None:
    """The import-graph check reads imports inside functions too (it can fail)."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from circuits.discovery.base import Ablation\n", encoding="utf-8")
    assert "circuits.discovery.base" in _imports(probe)


MOVED = [
    ("circuits.discovery.edges", "circuits.engine.edges"),
    ("circuits.discovery.edge_ablation", "circuits.engine.edge_ablation"),
    ("circuits.attention", "circuits.analysis.attention"),
    ("circuits.logit_attribution", "circuits.analysis.logit_attribution"),
    ("circuits.head_outputs", "circuits.analysis.head_outputs"),
    ("circuits.knockout", "circuits.analysis.knockout"),
    ("circuits.roles", "circuits.analysis.head_roles"),
    ("circuits.attention_plot", "circuits.pictures.attention_plot"),
    ("circuits.faithfulness_plot", "circuits.pictures.faithfulness_plot"),
    ("circuits.evaluation", "circuits.measures.roc"),
    ("circuits.faithfulness", "circuits.measures.faithfulness"),
    ("circuits.regression", "circuits.measures.regression"),
    ("circuits.rank_agreement", "circuits.measures.rank_agreement"),
    ("circuits.repair.roles", "circuits.repair.answer_roles"),
    ("circuits.repair.planted", "circuits.repair.planted_break"),
    ("circuits.stages", "circuits.seed.stages"),
    ("circuits.retrieval", "circuits.seed.retrieval"),
    ("circuits.refusal", "circuits.seed.refusal"),
    ("circuits.tune", "circuits.seed.tune"),
    ("circuits.lofit", "circuits.seed.lofit"),
    ("circuits.code_labels", "circuits.analysis.code_labels"),
    ("circuits.position_plot", "circuits.pictures.position_plot"),
]


@pytest.mark.parametrize(("old", "new"), MOVED)
def test_old_paths_warn_and_alias_the_moved_module(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)


@pytest.mark.parametrize(("old", "new"), MOVED)
def test_an_alias_file_is_only_the_alias(old: str, new: str) -> None:
    """An old path holds nothing but the alias: code left there would be silently shadowed."""
    tree = ast.parse((ROOT / (old.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    lines = [ast.unparse(n) for n in body]
    typed = ["from typing import TYPE_CHECKING", f"if TYPE_CHECKING:\n    from {new} import *"]  # for mypy only
    assert lines in (
        ["from circuits._shim import alias", f"alias(__name__, {new!r})"],
        [typed[0], "from circuits._shim import alias", typed[1], f"alias(__name__, {new!r})"],
    )


def test_moved_names_resolve_to_one_object_under_both_paths() -> None:
    sys.modules.pop("circuits.roles", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from circuits.roles import Role as old_role
    from circuits.analysis.head_roles import Role as new_role

    assert old_role is new_role


def test_seed_workflow_names_resolve_to_one_object_under_both_paths() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in ("circuits.stages", "circuits.tune", "circuits.code_labels"):
            sys.modules.pop(name, None)
        from circuits.code_labels import label_heads as old_labels
        from circuits.stages import find_stages as old_stages
        from circuits.tune import TuneConfig as old_config
    from circuits.analysis.code_labels import label_heads
    from circuits.seed.stages import find_stages
    from circuits.seed.tune import TuneConfig

    assert old_stages is find_stages and old_config is TuneConfig and old_labels is label_heads


def test_the_ablation_vocabulary_is_one_object_everywhere() -> None:
    from circuits.discovery import Ablation as from_methods
    from circuits.engine import Ablation as from_engine

    assert from_methods is from_engine


RENAMED = [
    ("circuits.graph", "Graph", "circuits.graph", "ComponentGraph"),
    ("circuits", "Graph", "circuits", "ComponentGraph"),
    ("circuits.repair", "Role", "circuits.repair", "AnswerRole"),
    ("circuits.repair.answer_roles", "Role", "circuits.repair.answer_roles", "AnswerRole"),
    ("circuits.repair.answer_roles", "parse_unique_name", "tasks.ioi", "parse_unique_name"),
    ("circuits.repair.answer_roles", "parse_queried_color", "tasks.colored_objects", "parse_queried_color"),
]
"""Names renamed (or moved to the tasks that own them) in the architecture pass: old module, old name, new ones."""


@pytest.mark.parametrize(("old_module", "old", "new_module", "new"), RENAMED)
def test_old_names_warn_and_give_the_renamed_object(old_module: str, old: str, new_module: str, new: str) -> None:
    target = getattr(importlib.import_module(new_module), new)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = getattr(importlib.import_module(old_module), old)
    assert got is target
    assert [w for w in caught if issubclass(w.category, DeprecationWarning) and new in str(w.message)]


@pytest.mark.parametrize(("new_module", "new"), sorted({(m, n) for _, _, m, n in RENAMED}))
def test_new_names_do_not_warn(new_module: str, new: str) -> None:
    module = importlib.import_module(new_module)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        getattr(module, new)


def test_unknown_names_still_raise_attribute_errors() -> None:
    for module in ("circuits", "circuits.graph", "circuits.repair", "circuits.repair.answer_roles"):
        with pytest.raises(AttributeError, match="no_such_name"):
            importlib.import_module(module).no_such_name  # noqa: B018


def test_the_old_roles_registry_gives_role_positions_for_every_task_with_roles() -> None:
    """``ROLES`` (task name → role builder) is rebuilt from the tasks' declarations, with a warning."""
    from circuits.repair import answer_roles
    from tasks.answers import tasks_with_roles

    with pytest.warns(DeprecationWarning, match="declared_roles"):
        registry = answer_roles.ROLES
    assert registry.names() == tasks_with_roles()
    assert {"colored-objects", "ioi", "mcqa"} <= set(registry.names())
    assert registry["ioi"] is answer_roles.role_positions
