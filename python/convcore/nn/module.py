"""`Module` and `Parameter`: the torch.nn-like base of every layer, with numpy arrays as parameters."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterator, Mapping, NamedTuple, Optional, TypeVar, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._types import Array
from ..ops import active_tracer


class IncompatibleKeys(NamedTuple):
    """What `Module.load_state_dict` returns: the keys it expected and did not get, and those it did not expect."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class StateDictError(ValueError):
    """A state dict that does not fit a module (`Module.load_state_dict`). The message says it in a few lines (how
    many keys are missing, unexpected or mis-shaped, with the first few of each); the attributes hold them all.

    Attributes:
        module: the module's class name.
        missing_keys: keys the module has and the state dict lacks.
        unexpected_keys: keys of the state dict the module does not have (empty unless loading strictly).
        mismatched: key -> (the module's shape, the state dict's shape), and for a non-numeric value
            key -> (None, its dtype as text).
    """

    SHOWN = 3  # keys named per kind in the message

    def __init__(self, module: str, missing_keys: list[str], unexpected_keys: list[str],
                 mismatched: dict[str, tuple[Any, Any]], source: Optional[str] = None, hint: str = "") -> None:
        self.module, self.missing_keys, self.unexpected_keys = module, missing_keys, unexpected_keys
        self.mismatched, self.source, self.hint = mismatched, source, hint
        super().__init__(self._text())

    def with_context(self, source: Optional[str] = None, hint: str = "") -> StateDictError:
        """The same error, saying where the state dict came from (`source`, e.g. a file) and what would fit
        (`hint`, one line)."""
        return StateDictError(self.module, self.missing_keys, self.unexpected_keys, self.mismatched,
                              source or self.source, hint or self.hint)

    def _text(self) -> str:
        def some(keys: list[str]) -> str:
            shown = ", ".join(f"'{k}'" for k in keys[:self.SHOWN])
            return shown + (f", ... and {len(keys) - self.SHOWN} more" if len(keys) > self.SHOWN else "")

        lines = []
        if self.missing_keys:
            lines.append(f"{len(self.missing_keys)} missing keys: {some(self.missing_keys)}")
        if self.unexpected_keys:
            lines.append(f"{len(self.unexpected_keys)} unexpected keys: {some(self.unexpected_keys)}")
        for i, (key, (want, got)) in enumerate(self.mismatched.items()):
            if i == self.SHOWN:
                lines.append(f"... and {len(self.mismatched) - self.SHOWN} more size mismatches")
                break
            lines.append(f"expected a numeric array for '{key}' (got dtype {got})" if want is None else
                         f"size mismatch for '{key}': expected shape {want} (got {got})")
        if self.hint:
            lines.append(self.hint)
        where = f" from {self.source}" if self.source else ""
        return f"error(s) loading state_dict for {self.module}{where}:\n  " + "\n  ".join(lines)


_M = TypeVar("_M", bound="Module")


class Parameter:
    """Marks an array as a parameter when assigned to a `Module` attribute (like `torch.nn.Parameter`).

    The module stores the plain float32 numpy array (`Parameter` is only a wrapper used during assignment), so
    `module.weight` is always an `np.ndarray`.

    Args:
        data: array-like; converted to a C-contiguous float32 array (no copy when it already is one).

    Example:
        >>> class Scale(Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.gain = Parameter(np.ones(3))
        >>> list(Scale().state_dict())
        ['gain']
    """

    __slots__ = ("data",)

    def __init__(self, data: ArrayLike) -> None:
        self.data = _as_parameter(data, "data")


def _as_parameter(value: ArrayLike, name: str) -> Array:
    """Convert a parameter value to a C-contiguous float32 array."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"expected a numeric array for parameter '{name}' (got dtype {array.dtype})")
    return np.ascontiguousarray(array, dtype=np.float32)


def _as_buffer(value: ArrayLike, name: str) -> NDArray[Any]:
    """Convert a buffer value to a numpy array, keeping its dtype (num_batches_tracked is int64)."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"expected a numeric array for buffer '{name}' (got dtype {array.dtype})")
    return array


def _check_name(module, name, kind):
    if not isinstance(name, str):
        raise TypeError(f"expected a str {kind} name (got {type(name).__name__})")
    if name == "" or "." in name:
        raise ValueError(f"expected a non-empty {kind} name without '.' (got {name!r})")
    if "_parameters" not in module.__dict__:
        raise AttributeError(f"cannot register {kind} '{name}' before Module.__init__() is called")


def _add_indent(text, spaces):
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


class Module:
    """Base class of all layers, mirroring `torch.nn.Module` for inference with numpy arrays.

    Subclasses call `super().__init__()`, assign parameters (`Parameter` or `register_parameter`), buffers
    (`register_buffer`) and submodules as attributes, and implement `forward`. Assigning a numpy array to the name of
    an existing parameter or buffer replaces its value.

    Example:
        >>> class Net(Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.conv = Conv2d(3, 8, 3, padding=1)
        ...         self.relu = ReLU()
        ...     def forward(self, x):
        ...         return self.relu(self.conv(x))
        >>> net = Net().eval()
        >>> y = net(np.zeros((1, 3, 16, 16), np.float32))   # (1, 8, 16, 16)
    """

    def __init__(self) -> None:
        # object.__setattr__: our __setattr__ needs these dicts to exist already.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the module's output. Every subclass defines it."""
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tracer = active_tracer()  # while this thread traces, the tracer learns which module makes each op call
        if tracer is None:
            return self.forward(*args, **kwargs)
        return tracer.call_module(self, args, kwargs)

    # ----------------------------------------------------------------------------------------------- registration
    def register_parameter(self, name: str, param: Union[Parameter, ArrayLike, None]) -> None:
        """Add a parameter (array-like, stored as float32) or None (e.g. an absent bias) under `name`."""
        _check_name(self, name, "parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if isinstance(param, Parameter):
            param = param.data
        self._parameters[name] = None if param is None else _as_parameter(param, name)

    def register_buffer(self, name: str, tensor: Optional[ArrayLike], persistent: bool = True) -> None:
        """Add a buffer (array-like, dtype kept; or None) under `name`.

        Buffers are state that is not a parameter, e.g. BatchNorm's running statistics. Persistent buffers appear in
        `state_dict()`.
        """
        _check_name(self, name, "buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        self._buffers[name] = None if tensor is None else _as_buffer(tensor, name)
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Optional[Module]) -> None:
        """Add a child module (or None) under `name`; it is then reachable as an attribute."""
        _check_name(self, name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"expected a Module for '{name}' (got {type(module).__name__})")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if isinstance(value, (Parameter, Module)) and params is None:
            raise AttributeError(f"cannot assign '{name}' before Module.__init__() is called")
        if isinstance(value, Parameter):
            self._discard(name)
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self._discard(name)
            self._modules[name] = value
        elif params is not None and name in params:
            params[name] = None if value is None else _as_parameter(value, name)
        elif params is not None and name in self._buffers:
            self._buffers[name] = None if value is None else _as_buffer(value, name)
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(f"expected a Module or None for submodule '{name}' (got {type(value).__name__})")
            self._modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def _discard(self, name: str) -> None:
        """Forget `name` everywhere before it is registered again as another kind."""
        self.__dict__.pop(name, None)
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails. __dict__.get: during unpickling the stores do not exist yet.
        for store in ("_parameters", "_buffers", "_modules"):
            values = self.__dict__.get(store)
            if values is not None and name in values:
                return values[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    # -------------------------------------------------------------------------------------------------- iteration
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Yield (name, module) for each direct child (each module once)."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        """Yield each direct child module."""
        for _, module in self.named_children():
            yield module

    def named_modules(self, memo: Optional[set[int]] = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """Yield (dotted path, module) for this module and all descendants, depth first; the root's path is ''."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        """Yield this module and all descendants."""
        for _, module in self.named_modules():
            yield module

    def _named_members(self, store: str, prefix: str, recurse: bool) -> Iterator[tuple[str, NDArray[Any]]]:
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Array]]:
        """Yield (dotted name, array) for each parameter (shared arrays once), e.g. ('layer1.0.conv1.weight', w)."""
        yield from self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Array]:
        """Yield each parameter array."""
        for _, value in self.named_parameters(recurse=recurse):
            yield value

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, NDArray[Any]]]:
        """Yield (dotted name, array) for each buffer (persistent or not)."""
        yield from self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[NDArray[Any]]:
        """Yield each buffer array."""
        for _, value in self.named_buffers(recurse=recurse):
            yield value

    # ------------------------------------------------------------------------------------------------------ state
    def _state_entries(self, prefix: str = "") -> Iterator[tuple[str, Module, str, NDArray[Any]]]:
        """Yield (key, module, local name, array) for every state_dict entry, in torch's order.

        Torch's order: a module's parameters, then its persistent buffers, then each child recursively. Shared
        arrays appear under every name, like in torch.
        """
        for name, value in self._parameters.items():
            if value is not None:
                yield prefix + name, self, name, value
        for name, value in self._buffers.items():
            if value is not None and name not in self._non_persistent_buffers:
                yield prefix + name, self, name, value
        for name, module in self._modules.items():
            if module is not None:
                yield from module._state_entries(prefix + name + ".")

    def _optional_state_keys(self) -> tuple[str, ...]:
        """Local state names that may be absent from a loaded state_dict (kept as they are). None by default."""
        return ()

    def state_dict(self, prefix: str = "") -> OrderedDict[str, NDArray[Any]]:
        """Return an OrderedDict of every parameter and persistent buffer by dotted name, in torch's key order.

        The values are the module's own arrays (not copies), like torch's tensors share storage.

        Example:
            >>> list(BatchNorm2d(4).state_dict())
            ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
        """
        return OrderedDict((key, value) for key, _, _, value in self._state_entries(prefix))

    def load_state_dict(self, state_dict: Mapping[str, ArrayLike], strict: bool = True) -> IncompatibleKeys:
        """Copy arrays from `state_dict` into this module's parameters and buffers.

        Values may be numpy arrays or anything `np.asarray` accepts (e.g. CPU torch tensors); each is cast to the
        dtype of the array it replaces (float32 parameters, int64 num_batches_tracked) and copied in place. Nothing
        is copied unless every check passes.

        Args:
            state_dict: mapping from dotted names (as in `state_dict()`) to arrays.
            strict: when True, missing and unexpected keys are errors; shape mismatches always are.

        Returns:
            IncompatibleKeys(missing_keys, unexpected_keys), both lists.

        Raises:
            StateDictError: a ValueError saying in a few lines how many keys are missing, unexpected (strict only)
                or mis-shaped (with the expected and the given shape), naming the first few; its attributes list
                them all.
        """
        if not hasattr(state_dict, "items"):
            raise TypeError(f"expected a mapping for state_dict (got {type(state_dict).__name__})")
        expected = {}
        optional = set()
        for key, module, name, array in self._state_entries():
            expected[key] = array
            if name in module._optional_state_keys():
                optional.add(key)
        missing = [key for key in expected if key not in state_dict and key not in optional]
        unexpected = [key for key in state_dict if key not in expected]
        mismatched: dict[str, tuple[Any, Any]] = {}
        updates = []
        for key, target in expected.items():
            if key not in state_dict:
                continue
            value = np.asarray(state_dict[key])
            if value.dtype.kind not in "biuf":
                mismatched[key] = (None, str(value.dtype))
            elif value.shape != target.shape:
                mismatched[key] = (target.shape, value.shape)
            else:
                updates.append((target, value))
        if mismatched or strict and (missing or unexpected):
            raise StateDictError(type(self).__name__, missing if strict else [], unexpected if strict else [],
                                 mismatched)
        for target, value in updates:
            np.copyto(target, value, casting="unsafe")
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------------------------------------------- mode
    def train(self: _M, mode: bool = True) -> _M:
        """Set training mode on this module and all descendants; returns self."""
        if not isinstance(mode, bool):
            raise TypeError(f"expected a bool for mode (got {type(mode).__name__})")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self: _M) -> _M:
        """Set inference mode (BatchNorm uses its running statistics); returns self."""
        return self.train(False)

    # ------------------------------------------------------------------------------------------------------- repr
    def extra_repr(self) -> str:
        """The layer's configuration shown inside its repr, e.g. '3, 16, kernel_size=(3, 3)'. Override it."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + _add_indent(repr(module), 2) for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        body = ""
        if len(extra_lines) == 1 and not child_lines:
            body = extra_lines[0]
        elif lines:
            body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{type(self).__name__}({body})"
