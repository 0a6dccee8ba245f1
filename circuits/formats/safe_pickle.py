"""Reading the pickles other tools ship (InterpBench configs and edge lists, MIB results) without running code.

``pickle.load`` on a downloaded file can run anything the file names. These files only need plain
containers, numbers, strings, torch dtypes and TransformerLens's config class, so the unpickler
here resolves those and refuses every other global with one readable line (Python documentation,
"Restricting Globals", https://docs.python.org/3/library/pickle.html#restricting-globals).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from circuits.errors import CircuitFileError

__all__ = ["safe_load"]

_BUILTINS = frozenset({"dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes", "bool"})
_CONFIG_MODULES = frozenset(
    {  # where TransformerLens has kept the class (older InterpBench files name the first)
        "transformer_lens.HookedTransformerConfig",
        "transformer_lens.config.hooked_transformer_config",
        "transformer_lens.config.HookedTransformerConfig",
    }
)
_ALLOWED = {
    ("collections", "OrderedDict"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "dtype"),
}


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        import torch

        if module == "builtins" and name in _BUILTINS:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype | torch.device):
            return getattr(torch, name)
        if module == "torch" and name == "device":
            return torch.device
        if module in _CONFIG_MODULES and name == "HookedTransformerConfig":
            from transformer_lens import HookedTransformerConfig

            return HookedTransformerConfig
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only plain data and model configs)")


def safe_load(path: str | Path) -> Any:
    """Unpickle ``path`` allowing only plain data, torch dtypes and TransformerLens configs.

    Raises:
        CircuitFileError: missing file, not a pickle, or a pickle that names anything else.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CircuitFileError(f"{path}: no such file") from None
    try:
        return _Restricted(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError) as err:
        raise CircuitFileError(f"{path}: not a readable pickle ({err})") from None
