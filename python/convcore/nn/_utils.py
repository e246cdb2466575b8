"""Argument checks shared by the layers."""


def pair(value, name):
    """An int or a pair of ints -> tuple of 2 ints (positive ints only)."""
    values = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else None
    if values is None or len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError(f"expected an int or a pair of ints for {name} (got {value!r})")
    if min(values) < 1:
        raise ValueError(f"expected positive values for {name} (got {value!r})")
    return values


def check_input(module, x, ndim):
    """Raise a torch-style error unless x (an array or a traced Value) has `ndim` dimensions."""
    got = getattr(x, "ndim", None)
    if got is None:
        raise TypeError(f"{type(module).__name__}: expected a numpy array input (got {type(x).__name__})")
    if got != ndim:
        raise ValueError(f"{type(module).__name__}: expected {ndim}D input (got {got}D input)")


def check_channels(module, x, channels, axis=1):
    """Raise unless x.shape[axis] == channels."""
    if x.shape[axis] != channels:
        raise ValueError(f"{type(module).__name__}: expected input with {channels} channels (got {x.shape[axis]})")
