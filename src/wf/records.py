"""`dataclass` and `field` for the classes a read command of `wf` loads, without `dataclasses`.

Importing `dataclasses` imports `inspect` (and through it `ast`, `dis`, `tokenize`), and each
`@dataclass` compiles four or five methods while its module is imported: for `wf status ID
--json`, more than the rest of wf together. The config, the settings, the store's rows and the
step kinds' declarations use these instead (`from wf.records import dataclass, field`), written
exactly as with the standard module; what a class gets is the same:

- `__init__` with the fields in order, defaults and `field(default_factory=...)`; compiled when
  the first instance is made (most classes of a module are never made by a given command), then
  as fast as the standard one;
- `__repr__`, `__eq__` over the fields compared, `__match_args__`; with `frozen=True`, `__hash__`
  and no assignment (`dataclasses.FrozenInstanceError`, as the standard module raises);
- `wf.records.replace` copies one with changes, as `dataclasses.replace`;
- to the `dataclasses` module it is a dataclass: `dataclasses.replace`, `fields`, `asdict` and
  `is_dataclass` work, its field records made by that module the first time one asks.

Only the options wf uses are taken (`frozen`; `field`'s default, default_factory, repr, hash,
compare); another is a TypeError, so that a class needing more goes back to `dataclasses`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # (typing.TYPE_CHECKING without importing typing)
_MISSING = object()


class Field:
    """One field's declaration, as `dataclasses.field` takes it."""

    __slots__ = ("name", "annotation", "default", "default_factory", "repr", "hash", "compare")

    def __init__(self, default=_MISSING, default_factory=_MISSING, repr=True, hash=None, compare=True):
        if default is not _MISSING and default_factory is not _MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name, self.annotation = "", ""
        self.default, self.default_factory = default, default_factory
        self.repr, self.hash, self.compare = repr, hash, compare


def _field(*, default=_MISSING, default_factory=_MISSING, repr=True, hash=None, compare=True):
    """A field with a default factory, or left out of repr, hash or comparisons."""
    return Field(default, default_factory, repr, hash, compare)


def _dataclass(cls=None, /, *, frozen: bool = False):
    """`@dataclass` or `@dataclass(frozen=True)`."""

    def wrap(cls):
        return _make(cls, frozen)

    return wrap if cls is None else wrap(cls)


def _make(cls, frozen: bool):
    fields: list[Field] = []
    for base in reversed(cls.__mro__[1:]):
        fields += [f for f in base.__dict__.get("__record_fields__", ()) if f.name not in {g.name for g in fields}]
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = cls.__dict__.get(name, _MISSING)
        f = value if isinstance(value, Field) else Field(default=value)
        f.name, f.annotation = name, str(annotation)
        if isinstance(value, Field):  # the class attribute is the default, as with dataclasses
            if f.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        fields = [g for g in fields if g.name != name] + [f]
    seen_default = False
    for f in fields:
        if f.default is _MISSING and f.default_factory is _MISSING:
            if seen_default:
                raise TypeError(f"non-default argument {f.name!r} follows default argument")
        else:
            seen_default = True
    cls.__record_fields__ = tuple(fields)
    cls.__record_compared__ = tuple(f.name for f in fields if f.compare)
    cls.__record_hashed__ = tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))
    cls.__match_args__ = tuple(f.name for f in fields)  # type: ignore[misc]
    cls.__dataclass_fields__ = _StandardFields(frozen)
    own = cls.__dict__
    if "__init__" not in own:
        cls.__init__ = _first_init(cls, frozen)
    if "__repr__" not in own:
        cls.__repr__ = _repr
    if "__eq__" not in own:
        cls.__eq__ = _eq
        if frozen:
            cls.__hash__ = _hash
        elif "__hash__" not in own:
            cls.__hash__ = None  # mutable and compared by value: unhashable, as with dataclasses
    if frozen:
        cls.__setattr__ = _frozen_setattr(cls)
        cls.__delattr__ = _frozen_delattr(cls)
    return cls


def _first_init(cls, frozen: bool):
    """An __init__ that compiles the real one, puts it on the class and runs it."""

    def __init__(self, *args, **kwargs):
        real = _compile_init(cls, frozen)
        cls.__init__ = real
        real(self, *args, **kwargs)

    return __init__


def _compile_init(cls, frozen: bool):
    scope: dict = {"_MISSING": _MISSING, "_set": object.__setattr__}
    params, body = ["self"], []
    for f in cls.__record_fields__:
        if f.default_factory is not _MISSING:
            scope[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            value = f"_factory_{f.name}() if {f.name} is _MISSING else {f.name}"
        else:
            if f.default is not _MISSING:
                scope[f"_default_{f.name}"] = f.default
                params.append(f"{f.name}=_default_{f.name}")
            else:
                params.append(f.name)
            value = f.name
        body.append(f"_set(self, {f.name!r}, {value})" if frozen else f"self.{f.name} = {value}")
    source = f"def __init__({', '.join(params)}):\n" + "".join(f"    {line}\n" for line in body or ["pass"])
    exec(compile(source, f"<record {cls.__qualname__}>", "exec"), scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    post_init = getattr(cls, "__post_init__", None)
    if post_init is None:
        return init

    def with_post_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.__post_init__()

    return with_post_init


def _repr(self) -> str:
    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__record_fields__ if f.repr)
    return f"{type(self).__qualname__}({shown})"


def _eq(self, other):
    if other.__class__ is not self.__class__:
        return NotImplemented
    names = self.__record_compared__
    return tuple(getattr(self, n) for n in names) == tuple(getattr(other, n) for n in names)


def _hash(self) -> int:
    return hash(tuple(getattr(self, n) for n in self.__record_hashed__))


def _frozen_error(name: str) -> Exception:
    from dataclasses import FrozenInstanceError

    return FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_setattr(cls):
    def __setattr__(self, name, value):
        if type(self) is cls or name in {f.name for f in cls.__record_fields__}:
            raise _frozen_error(name)
        super(cls, self).__setattr__(name, value)

    return __setattr__


def _frozen_delattr(cls):
    def __delattr__(self, name):
        if type(self) is cls or name in {f.name for f in cls.__record_fields__}:
            raise _frozen_error(name)
        super(cls, self).__delattr__(name)

    return __delattr__


class _StandardFields:
    """`__dataclass_fields__`, made by the dataclasses module when first asked for (by
    `dataclasses.replace`, `fields`, `asdict`, `is_dataclass`)."""

    def __init__(self, frozen: bool):
        self.frozen = frozen

    def __get__(self, obj, cls):
        import dataclasses

        def standard(f: Field):
            return dataclasses.field(
                default=dataclasses.MISSING if f.default is _MISSING else f.default,
                default_factory=dataclasses.MISSING if f.default_factory is _MISSING else f.default_factory,
                repr=f.repr,
                hash=f.hash,
                compare=f.compare,
            )

        twin = dataclasses.make_dataclass(
            cls.__name__, [(f.name, f.annotation, standard(f)) for f in cls.__record_fields__], frozen=self.frozen
        )
        made = twin.__dataclass_fields__
        if "__dataclass_fields__" in cls.__dict__:
            type.__setattr__(cls, "__dataclass_fields__", made)
        return made


def _replace(obj, /, **changes):
    """A copy of the record `obj` with `changes` (`dataclasses.replace`, without that module)."""
    unknown = set(changes) - {f.name for f in obj.__record_fields__}
    if unknown:
        raise TypeError(f"{type(obj).__qualname__} has no field {sorted(unknown)[0]!r}")
    return obj.__class__(**{f.name: changes.get(f.name, getattr(obj, f.name)) for f in obj.__record_fields__})


if TYPE_CHECKING:  # type checkers know the standard ones, which these behave as
    from dataclasses import dataclass, field, replace
else:
    dataclass, field, replace = _dataclass, _field, _replace
