"""Chapter parameters: profiles, defaults, overrides and their validation.

A chapter's first code cell is tagged ``parameters`` and holds plain assignments that
papermill can override. Every knob defaults to ``None``, which means "the profile's value"::

    # %% tags=["parameters"]
    profile = "cpu"       # smoke | cpu | paper
    n_images = None       # None: the profile's value
    seed = None

The next cell declares the knobs and resolves them. It must stay cheap and free of side
effects (only this module is needed): the chapter runner executes the two cells in-process to
validate overrides before it starts a kernel, so a bad parameter stops the run before anything
is written::

    # %%
    from reprolib.book.params import Param, Spec
    SPEC = Spec(
        Param("n_images", int, smoke=16, cpu=512, paper=1000, lo=1, doc="images attacked"),
        Param("seed", int, smoke=0, cpu=0, paper=0, lo=0, doc="seed of every random draw"),
    )
    params = SPEC.resolve(globals())

:meth:`Spec.resolve` replaces each ``None`` by the profile's value, checks every value's type
and range, rejects names the cell does not declare, writes the final values back into the
namespace (so ``n_images`` holds the number afterwards) and returns them as :class:`Params`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

#: The profiles every chapter defines, from cheapest to most expensive.
PROFILES = ("smoke", "cpu", "paper")

#: Value types a parameter may declare. ``"list[float]"`` and ``"list[int]"`` are grids.
TYPES = (int, float, str, bool, "list[float]", "list[int]")

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")

#: Names the IPython kernel puts in a notebook's globals before any cell runs.
_KERNEL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


def _short(value: Any, width: int = 28) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 4] + " …" + text[-2:]


class ParameterError(ValueError):
    """An unknown parameter name, or a value of the wrong type or out of range.

    The message ends with the table of valid parameters.
    """


@dataclass(frozen=True)
class Param:
    """One knob of a chapter: its type, its value under each profile, and its valid range.

    Args:
        name: the variable name in the ``parameters`` cell.
        type: ``int``, ``float``, ``str``, ``bool``, ``"list[float]"`` or ``"list[int]"``.
        smoke, cpu, paper: the value under each profile.
        doc: one line saying what the knob changes.
        lo, hi: inclusive bounds for numbers (for grids: for every element).
        choices: the allowed values of a ``str`` knob.
        check: an extra predicate; a value for which it returns False is rejected.
        check_doc: how ``check`` reads in the table of valid parameters.
    """

    name: str
    type: Any
    smoke: Any
    cpu: Any
    paper: Any
    doc: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: Sequence[str] | None = None
    check: Callable[[Any], bool] | None = None
    check_doc: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name == "profile":
            raise ValueError(f"{self.name!r} cannot be a parameter name.")
        if self.type not in TYPES:
            raise ValueError(f"Parameter {self.name!r}: type must be one of {TYPES}, not {self.type!r}.")
        for profile in PROFILES:  # the declared profile values must pass their own checks
            self.validate(getattr(self, profile))

    def default(self, profile: str) -> Any:
        """The value under ``profile``."""
        return getattr(self, profile)

    def describe(self) -> str:
        """The type and valid range, as one short phrase."""
        kind = self.type if isinstance(self.type, str) else self.type.__name__
        parts = [kind]
        if self.choices is not None:
            parts.append("one of " + ", ".join(map(repr, self.choices)))
        if self.lo is not None or self.hi is not None:
            lo = "-inf" if self.lo is None else _num(self.lo)
            hi = "inf" if self.hi is None else _num(self.hi)
            parts.append(f"in [{lo}, {hi}]")
        if self.check_doc:
            parts.append(self.check_doc)
        return ", ".join(parts)

    def validate(self, value: Any) -> Any:
        """``value`` converted to the declared type (ints to floats, tuples to lists), or
        :class:`ValueError` saying what is wrong."""
        value = self._convert(value)
        numbers = value if isinstance(value, list) else [value] if isinstance(value, (int, float)) else []
        for v in numbers:
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{v} is not finite")
            if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
                raise ValueError(f"{v!r} is outside the valid range")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{value!r} is not one of {', '.join(map(repr, self.choices))}")
        if self.check is not None and not self.check(value):
            raise ValueError(f"{value!r} fails the check ({self.check_doc or 'see the chapter'})")
        return value

    def _convert(self, value: Any) -> Any:
        wrong = ValueError(f"expected {self.describe().split(',')[0]}, got {type(value).__name__} {value!r}")
        if self.type is bool:
            if not isinstance(value, bool):
                raise wrong
            return value
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise wrong
            return value
        if self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise wrong
            return float(value)
        if self.type is str:
            if not isinstance(value, str):
                raise wrong
            return value
        # grids
        if not isinstance(value, (list, tuple)) or len(value) == 0:
            raise ValueError(f"expected a non-empty {self.type}, got {type(value).__name__} {value!r}")
        out = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or \
                    (self.type == "list[int]" and not isinstance(v, int)):
                raise ValueError(f"expected a {self.type}, but element {v!r} is a {type(v).__name__}")
            out.append(float(v) if self.type == "list[float]" else v)
        return out


def device_param(doc: str = "torch device; 'auto' is CUDA when present, else CPU") -> Param:
    """The ``device`` knob every chapter shares: ``auto`` under the smoke and cpu profiles
    (which means CPU on a machine without CUDA) and under ``paper``."""
    return Param("device", str, smoke="auto", cpu="auto", paper="auto", doc=doc,
                 check=_device_available, check_doc="auto, cpu, cuda, cuda:N or mps, present on this machine")


def _device_available(value: str) -> bool:
    """The ``device`` check: a valid name, and a device this machine has (checked up front, so a
    run on a machine without CUDA stops before the kernel starts)."""
    if not _DEVICE.match(value):
        return False
    if value == "auto":
        return True
    from ..device import resolve

    try:
        resolve(value)
    except RuntimeError:
        return False
    return True


def seed_param(value: int = 0) -> Param:
    """The ``seed`` knob: the same seed under every profile."""
    return Param("seed", int, smoke=value, cpu=value, paper=value, lo=0, hi=2**31 - 1,
                 doc="seed of every random draw (images, targets, restarts)")


class Params(Mapping[str, Any]):
    """The resolved parameters of one run: read them as attributes or as a mapping.

    ``profile`` is the profile, ``overrides`` the names given explicitly (not ``None``).
    """

    def __init__(self, profile: str, values: dict[str, Any], overrides: Iterable[str]) -> None:
        self.profile = profile
        self._values = dict(values)
        self.overrides = tuple(overrides)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(f"No parameter {name!r}; parameters: {', '.join(self._values)}") from None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def as_dict(self) -> dict[str, Any]:
        """``{"profile": ..., name: value, ...}``: everything that determines the run."""
        return {"profile": self.profile, **self._values}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"Params({inner})"


class Spec:
    """The knobs of one chapter (see the module docstring for the two-cell pattern)."""

    def __init__(self, *params: Param) -> None:
        names = [p.name for p in params]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"Parameters declared twice: {', '.join(duplicated)}.")
        self.params: dict[str, Param] = {p.name: p for p in params}

    @property
    def names(self) -> list[str]:
        """Every name the ``parameters`` cell may set, ``profile`` first."""
        return ["profile", *self.params]

    def defaults(self, profile: str) -> dict[str, Any]:
        """Every knob's value under ``profile``."""
        self._check_profile(profile)
        return {name: p.default(profile) for name, p in self.params.items()}

    def help(self) -> str:
        """The table of valid parameters: name, type and range, value per profile, meaning."""
        rows = [("profile", "str, one of " + ", ".join(map(repr, PROFILES)), "", "", "",
                 "which scale to run at (default 'cpu')")]
        for p in self.params.values():
            rows.append((p.name, p.describe(), _short(p.smoke), _short(p.cpu), _short(p.paper), p.doc))
        head = ("name", "type / valid values", "smoke", "cpu", "paper", "meaning")
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(5)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in [head, *rows]]
        return "\n".join(lines)

    def markdown(self) -> str:
        """The same table in Markdown, for a chapter to display."""
        rows = ["| parameter | type / valid values | smoke | cpu | paper | meaning |",
                "|---|---|---|---|---|---|",
                "| `profile` | " + " / ".join(f"`{p}`" for p in PROFILES) + " | | | | which scale to run at |"]
        for p in self.params.values():
            rows.append(f"| `{p.name}` | {p.describe()} | `{p.smoke!r}` | `{p.cpu!r}` | `{p.paper!r}` | {p.doc} |")
        return "\n".join(rows)

    def _error(self, problems: list[str]) -> ParameterError:
        return ParameterError("\n".join(problems) + "\n\nValid parameters (None means the profile's value):\n"
                              + self.help())

    def _check_profile(self, profile: Any) -> None:
        if profile not in PROFILES:
            raise self._error([f"profile={profile!r} is not a profile; choose one of {', '.join(PROFILES)}."])

    def unknown(self, names: Iterable[str]) -> list[str]:
        """The names among ``names`` that are not parameters of this chapter."""
        return [n for n in names if n not in self.names]

    def resolve(self, namespace: dict[str, Any] | None = None, /, **given: Any) -> Params:
        """Validate and resolve the parameters found in ``namespace`` (a notebook's
        ``globals()``) or given as keywords.

        Every plain value (number, string, list, dict, ``None``) in the namespace whose name
        does not start with ``_`` must be a declared parameter: this catches names papermill
        injected that the ``parameters`` cell does not declare. Declared knobs left at
        ``None`` take the profile's value. The resolved values are written back into
        ``namespace``.

        Raises:
            ParameterError: listing every problem and the valid parameters.
        """
        values = {}
        if namespace is not None:
            values.update({k: v for k, v in namespace.items()
                           if not k.startswith("_") and k not in _KERNEL_NAMES
                           and (v is None or isinstance(v, (bool, int, float, str, list, tuple, dict)))})
        values.update(given)
        problems = [f"Unknown parameter {n!r}." for n in self.unknown(values)]
        profile = values.get("profile", "cpu")
        if profile not in PROFILES:
            problems.append(f"profile={profile!r} is not a profile; choose one of {', '.join(PROFILES)}.")
            profile = None
        resolved, overrides = {}, []
        for name, p in self.params.items():
            value = values.get(name)
            if value is None:
                if profile is not None:
                    resolved[name] = p.default(profile)
                continue
            try:
                resolved[name] = p.validate(value)
                overrides.append(name)
            except ValueError as exc:
                problems.append(f"Invalid value for {name!r}: {exc} (valid: {p.describe()}).")
        if problems:
            raise self._error(problems)
        if namespace is not None:
            namespace.update(resolved)
        return Params(profile, resolved, overrides)


def torch_device(value: str | None):
    """The torch device a ``device`` knob names (``"auto"``/``None``: CUDA when present)."""
    from ..device import resolve

    return resolve(None if value in (None, "auto") else value)
