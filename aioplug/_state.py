"""Variable state: values a request keeps between inferences."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["VariableState"]


class VariableState:
    """One state variable of one request: read, written and reset independently per request."""

    def __init__(self, name: str, initial: np.ndarray) -> None:
        self._name = name
        self._initial = initial
        self._initial.flags.writeable = False
        self._value = initial

    @property
    def name(self) -> str:
        """The state's name (its state input)."""
        return self._name

    def reset(self) -> None:
        """Returns the state to its initial value."""
        self._value = self._initial

    def get_state(self) -> np.ndarray:
        """Returns the current value (read-only; it is replaced, never changed in place)."""
        return self._value

    def set_state(self, value: Any) -> None:
        """Sets the value; its dtype and shape must equal the state's."""
        array = np.asarray(value)
        if array.dtype != self._initial.dtype or array.shape != self._initial.shape:
            raise InputError(
                f"state {self._name!r} expects {self._initial.dtype.name} of shape "
                f"{self._initial.shape}; got {array.dtype.name} of shape {array.shape}"
            )
        array = array.copy()
        array.flags.writeable = False
        self._value = array

    def _update(self, value: np.ndarray) -> None:
        self._value = value

    def __repr__(self) -> str:
        return f"<VariableState {self._name!r} {self._initial.dtype.name}{list(self._initial.shape)}>"
