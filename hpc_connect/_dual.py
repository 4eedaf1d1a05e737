"""Values that read right in both API generations where one name means two things.

- ``Count``: an ``int`` that may also be called (``backend.node_count`` is an int in the
  second generation, a method in the first: ``range(b.node_count)`` and
  ``b.node_count()`` both work).
- ``LauncherName``: a ``str`` that may also be called (``backend.launcher`` is the
  launcher's name in the first generation, ``backend.launcher()`` the launcher object in
  the second).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Count(int):
    """An int; calling it returns the plain int."""

    def __call__(self) -> int:
        return int(self)


class LauncherName(str):
    """A launcher's name; calling it returns the backend's launcher object (``make()``)."""

    _make: Callable[[], Any] | None

    def __new__(cls, name: str, make: Callable[[], Any] | None = None) -> LauncherName:
        self = super().__new__(cls, name)
        self._make = make
        return self

    def __call__(self) -> Any:
        if self._make is None:
            raise TypeError(f"launcher {str(self)!r}: no backend to make it for")
        return self._make()


class CountProperty:
    """Turns a subclass's ``def node_count(self) -> int`` into a property whose value is a
    ``Count`` (first-generation overrides keep working for second-generation callers)."""

    def __init__(self, method: Callable[[Any], int]) -> None:
        self.method = method
        self.__doc__ = method.__doc__

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return Count(self.method(instance))


class LauncherProperty:
    """``launcher``: a ``LauncherName`` bound to the instance; settable per instance."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return LauncherName(self.name)
        name = instance.__dict__.get("_launcher_name", self.name)
        return LauncherName(str(name), instance.launch_client)

    def __set__(self, instance: Any, value: str) -> None:
        instance.__dict__["_launcher_name"] = str(value)


class LauncherMethod:
    """A second-generation subclass's ``def launcher(self)``: still called as a method,
    and also a ``LauncherName`` (its adapter's name) for first-generation readers."""

    def __init__(self, method: Callable[[Any], Any]) -> None:
        self.method = method
        self.__doc__ = method.__doc__

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return LauncherName("(the backend's own)")
        launcher = self.method(instance)
        adapter = getattr(launcher, "adapter", None)
        name = getattr(adapter, "name", None) or getattr(launcher, "name", None) or "mpi"
        return LauncherName(str(name), lambda: launcher)
