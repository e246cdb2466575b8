"""Containers: Sequential, ModuleList, ModuleDict (as in torch.nn)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ItemsView, Iterable, Iterator, KeysView, Mapping, Optional, TypeVar, Union, ValuesView, overload

from .module import Module

_S = TypeVar("_S", bound="_ModuleSequence")


def _position(index, length):
    """Normalize an int index (negative counts from the end) or raise IndexError."""
    if not isinstance(index, int):
        raise TypeError(f"expected an int or slice index (got {type(index).__name__})")
    if not -length <= index < length:
        raise IndexError(f"index {index} is out of range for a container of {length} modules")
    return index % length


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: length, iteration in order, append / extend by position."""

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self: _S, module: Module) -> _S:
        """Add `module` at the end (named by its position); returns self."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self: _S, modules: Iterable[Module]) -> _S:
        """Append each of `modules`; returns self."""
        for module in modules:
            self.append(module)
        return self


class Sequential(_ModuleSequence):
    """Calls its modules in order, feeding each one's output to the next.

    Args:
        *args: modules, named '0', '1', ...; or a single OrderedDict of name -> module.

    Example:
        >>> block = Sequential(Conv2d(3, 8, 3), BatchNorm2d(8), ReLU())
        >>> block[0], len(block), block[1:]   # indexing, length, slicing (a Sequential with the same names)
    """

    @overload
    def __init__(self, *args: Module) -> None: ...

    @overload
    def __init__(self, arg: OrderedDict[str, Module], /) -> None: ...

    def __init__(self, *args: Any) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), module)

    @overload
    def __getitem__(self, index: int) -> Module: ...

    @overload
    def __getitem__(self, index: slice) -> Sequential: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[Module, Sequential]:
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        return items[_position(index, len(items))][1]

    def __setitem__(self, index: int, module: Module) -> None:
        name = list(self._modules)[_position(index, len(self._modules))]
        self.add_module(name, module)

    def forward(self, x: Any) -> Any:
        for module in self:
            x = module(x)
        return x


class ModuleList(_ModuleSequence):
    """Holds modules in a list, registered as children '0', '1', ... (for their parameters and state_dict keys).

    Args:
        modules: optional iterable of modules.

    Example:
        >>> blocks = ModuleList([Conv2d(8, 8, 3, padding=1) for _ in range(3)])
        >>> blocks.append(ReLU()); len(blocks)
        4
    """

    def __init__(self, modules: Optional[Iterable[Module]] = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    @overload
    def __getitem__(self, index: int) -> Module: ...

    @overload
    def __getitem__(self, index: slice) -> ModuleList: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[Module, ModuleList]:
        values = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(values[index])
        return values[_position(index, len(values))]

    def __setitem__(self, index: int, module: Module) -> None:
        self.add_module(str(_position(index, len(self))), module)

    def insert(self, index: int, module: Module) -> None:
        """Insert `module` before position `index`, renaming the ones after it."""
        values = list(self._modules.values())
        values.insert(index, module)
        self._modules.clear()
        self.extend(values)


class ModuleDict(Module):
    """Holds modules in an ordered dict; keys are their names as children.

    Args:
        modules: optional mapping or iterable of (name, module) pairs.

    Example:
        >>> heads = ModuleDict({"cls": Linear(64, 10), "box": Linear(64, 4)})
        >>> list(heads), heads["cls"]
    """

    def __init__(self, modules: Union[Mapping[str, Module], Iterable[tuple[str, Module]], None] = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> KeysView[str]:
        """The names, in insertion order."""
        return self._modules.keys()

    def items(self) -> ItemsView[str, Module]:
        """(name, module) pairs, in insertion order."""
        return self._modules.items()

    def values(self) -> ValuesView[Module]:
        """The modules, in insertion order."""
        return self._modules.values()

    def update(self, modules: Union[Mapping[str, Module], Iterable[tuple[str, Module]]]) -> None:
        """Add or replace modules from a mapping or an iterable of (name, module) pairs."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        for key, module in pairs:
            self[key] = module
