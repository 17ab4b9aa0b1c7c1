"""wf.records behaves as the standard dataclasses for what wf declares with it, and wf.jsonc reads
a config as pyjson5 does. Both exist so that `wf status` starts without importing dataclasses
(and inspect, ast) or pyjson5 (and decimal); tests/test_cli_startup.py checks that it does."""

from __future__ import annotations

import dataclasses
import json
import math
import random

import pyjson5
import pytest

from wf import jsonc, records


def _pair(frozen: bool):
    """The same class declared with the standard module and with wf.records."""
    made = []
    for dc, fld in ((dataclasses.dataclass, dataclasses.field), (records._dataclass, records._field)):

        @dc(frozen=frozen)
        class Row:
            seq: int
            name: str
            data: dict = fld(hash=False)  # noqa: RUF009
            tags: tuple = ()
            note: str | None = fld(default=None, compare=False)  # noqa: RUF009
            items: list = fld(default_factory=list)  # noqa: RUF009

        made.append(Row)
    return made


@pytest.mark.parametrize("frozen", [False, True])
def test_a_record_is_what_a_dataclass_is(frozen):
    std, ours = _pair(frozen)
    for cls in (std, ours):
        a = cls(1, "a", {"k": 1}, note="x")
        assert (
            repr(a).replace(cls.__qualname__, "Row")
            == "Row(seq=1, name='a', data={'k': 1}, tags=(), note='x', items=[])"
        )
        assert a == cls(1, "a", {"k": 1}, note="y")  # note is not compared
        assert a != cls(2, "a", {"k": 1})
        assert a.items is not cls(1, "a", {}).items  # a fresh default per instance
        assert cls.__match_args__ == ("seq", "name", "data", "tags", "note", "items")
        with pytest.raises(TypeError):
            cls()  # seq, name, data have no default
    if frozen:
        for cls in (std, ours):
            with pytest.raises(dataclasses.FrozenInstanceError):
                cls(1, "a", {}).seq = 2
            with pytest.raises(dataclasses.FrozenInstanceError):
                del cls(1, "a", {}).seq
        # data is left out of the hash, the rest of the compared fields are in it: both agree
        h = [hash(c(1, "a", {"k": [1]}, ("t",), items=())) for c in (std, ours)]
        assert h[0] == h[1]
    else:
        assert std.__hash__ is None and ours.__hash__ is None
        row = ours(1, "a", {})
        row.seq = 5
        assert row.seq == 5


def test_the_dataclasses_module_takes_a_record_as_a_dataclass():
    _, ours = _pair(frozen=True)
    row = ours(1, "a", {"k": 1}, items=[1])
    assert dataclasses.is_dataclass(row)
    assert [f.name for f in dataclasses.fields(row)] == ["seq", "name", "data", "tags", "note", "items"]
    assert dataclasses.replace(row, seq=2) == ours(2, "a", {"k": 1}, items=[1])
    assert dataclasses.asdict(row) == {"seq": 1, "name": "a", "data": {"k": 1}, "tags": (), "note": None, "items": [1]}
    assert records._replace(row, name="b").name == "b"
    with pytest.raises(TypeError):
        records._replace(row, nope=1)


def test_wfs_records_are_records():
    """The config, settings and store rows load without the dataclasses module, and still replace."""
    from wf.config import Config
    from wf.runtime.settings import Settings
    from wf.runtime.store.base import HistoryRow, InstanceRow, StepRow

    for cls in (Config, Settings, InstanceRow, StepRow, HistoryRow):
        assert "__record_fields__" in vars(cls), cls
    assert dataclasses.replace(Settings(), lease=5.0).lease == 5.0


_FRAGMENTS = [
    "{", "}", "[", "]", ",", ":", '"a"', '"b\\"c"', '"//x"', '"/*y*/"', "1", "-0", "1.5e3", "1e400", "NaN", "Infinity",
    "-Infinity", "true", "null", " ", "\n", "// c\n", "/* c */", "/*", "/", "'s'", "a", '"\\ud800"', '"\\u0041"', "\t",
    '"\t"', "0x1", "+1", ".5", "\u00a0", "\ufeff",
]  # fmt: skip


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_jsonc_read_by_json_is_what_pyjson5_reads():
    """Whatever `as_json` + json accept, pyjson5 reads to the same value (what they refuse goes to
    pyjson5 in config.py, so its values and errors are pyjson5's)."""
    rng = random.Random(16)
    seeds = ['{"a": [1, 2,], "b": {"c": true,},}', "[1, /* x */ 2, // y\n 3,]", '{"x": "http://a/*b*/"}']
    taken = 0
    for i in range(20000):
        if i < len(seeds):
            text = seeds[i]
        elif rng.random() < 0.7:
            parts = list(rng.choice(seeds))
            for _ in range(rng.randint(1, 3)):
                parts.insert(rng.randrange(len(parts) + 1), rng.choice(_FRAGMENTS))
            text = "".join(parts)
        else:
            text = "".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(1, 8)))
        plain = jsonc.as_json(text)
        if plain is None:
            continue
        try:
            value = json.loads(plain, parse_float=jsonc.finite)
        except (ValueError, RecursionError):
            continue
        taken += 1
        assert _same(value, pyjson5.loads(text)), text
    assert taken > 1000  # the comparison covered many texts json reads
