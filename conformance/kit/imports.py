"""Import a port without its incidental dependencies: stub packages and old-gym aliasing, for one import.

    from softq_conformance.kit import import_port

    softq = import_port("pytorchrl.algos.softq", root=os.environ["PYTORCHRL_ROOT"],
                        stubs=["rllab", "pyprind"],
                        provide={"rllab.misc.ext": {"extract": lambda d, *keys: tuple(d[k] for k in keys)}})

Every module under a stubbed package (`rllab`, `rllab.algos.base`, ...) is an empty stand-in
whose attributes are inert: usable as a base class (`class SoftQ(RLAlgorithm)`), as a decorator
that returns what it decorates (`@overrides`), and as a callable or object that does nothing
(`logger.log(...)`). `provide` puts real replacements for the few helpers the code under test
actually uses (a stub silently returning nothing there would change the port's numbers, so give
those explicitly). `gym_to_gymnasium=True` makes `import gym` load gymnasium. sys.modules and
sys.path are restored afterwards, except for the imported port's own modules (and the stubs they
hold references to), so later imports of the port reuse them.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any, Iterable, Iterator, Mapping

__all__ = ["import_port", "shimmed_imports", "Inert"]


class _InertMeta(type):
    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__") or cls is not Inert:  # a port's class deriving from a stub stays strict
            raise AttributeError(name)
        return Inert


class Inert(metaclass=_InertMeta):
    """A stand-in for anything in a stubbed package."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Inert and len(args) == 1 and not kwargs and callable(args[0]):
            return args[0]  # used as a decorator: return the decorated function unchanged
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or type(self) is not Inert:  # instances of a port's subclass stay strict
            raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r} (its base class is a stub)")
        return Inert()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return Inert()


class _StubModule(types.ModuleType):
    _provided: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        full = f"{self.__name__}.{name}"
        if any(p == full or p.startswith(full + ".") for p in self._provided):
            return importlib.import_module(full)  # `from pkg import provided_module`
        return Inert


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, prefixes: Iterable[str], provide: Mapping[str, Mapping[str, Any]]):
        self.prefixes, self.provide = tuple(prefixes), provide

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if any(fullname == p or fullname.startswith(p + ".") for p in self.prefixes):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        mod = _StubModule(spec.name)
        mod._provided = tuple(self.provide)
        mod.__path__ = []  # a package, so that submodules import
        mod.__dict__.update(self.provide.get(spec.name, {}))
        return mod

    def exec_module(self, module: types.ModuleType) -> None:
        pass


@contextlib.contextmanager
def shimmed_imports(stubs: Iterable[str] = (), provide: Mapping[str, Mapping[str, Any]] | None = None,
                    gym_to_gymnasium: bool = False, path: str | None = None) -> Iterator[None]:
    """For the duration of the block: stubbed packages, gym -> gymnasium, `path` first on sys.path."""
    provide = dict(provide or {})
    stubs = list(stubs) + [p.split(".")[0] for p in provide if p.split(".")[0] not in stubs]
    before = dict(sys.modules)
    finder = _StubFinder(stubs, provide)
    sys.meta_path.insert(0, finder)
    old_path = list(sys.path)
    if path:
        sys.path.insert(0, str(path))
    if gym_to_gymnasium and "gym" not in sys.modules:
        import gymnasium

        sys.modules["gym"] = gymnasium
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        sys.path[:] = old_path
        for name in set(sys.modules) - set(before):  # drop stubs and aliases; keep real modules imported
            if isinstance(sys.modules[name], _StubModule) or name == "gym":
                del sys.modules[name]


def import_port(module: str, root: str | None = None, stubs: Iterable[str] = (),
                provide: Mapping[str, Mapping[str, Any]] | None = None, gym_to_gymnasium: bool = False,
                missing: Mapping[str, Iterable[str]] | None = None):
    """Import `module` from the port's source tree `root` with incidental imports shimmed.

    `missing` = {real module: [names]}: names a port imports from one of its own modules that the
    module does not define (a broken import at the port's revision, in code the checks do not run),
    filled with inert stand-ins so that the rest imports; each filled name is listed in
    `module.__conformance_filled__`, and a report should name it.
    """
    with shimmed_imports(stubs, provide, gym_to_gymnasium, root):
        filled = []
        for mod_name, names in (missing or {}).items():
            mod = importlib.import_module(mod_name)
            for name in names:
                if not hasattr(mod, name):
                    setattr(mod, name, Inert)
                    filled.append(f"{mod_name}.{name}")
        mod = importlib.import_module(module)
        if filled:
            mod.__conformance_filled__ = filled
        return mod
