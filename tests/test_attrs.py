"""parse_attrs: typed parsing of NNVM attribute strings; each registered schema checked against MXNet's declarations."""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Literal, NamedTuple, Optional

import numpy as np
import pytest

from mx2trt import REGISTRY
from mx2trt._mx import mx, op_arguments
from mx2trt.attrs import NoAttrs, attr, parse_attrs, schema
from mx2trt.errors import AttributeParseError


@schema
class Demo:
    kernel: tuple[int, ...] = attr()
    stride: tuple[int, ...] = ()
    pad: tuple[Optional[int], ...] = ()
    num: int = 1
    scale: float = 1.0
    flag: bool = False
    mode: Literal["max", "avg"] = "max"
    opt_int: Optional[int] = 7
    opt_mode: Optional[Literal["fast", "slow"]] = None
    tune: int = attr(64, ignored=True)


def parse(**raw: str) -> Demo:
    return parse_attrs(Demo, {"kernel": "(3, 3)", **raw}, op="Demo", node="n0")


def test_defaults_are_filled_and_result_is_frozen():
    a = parse()
    assert a == Demo(kernel=(3, 3))
    got = (a.stride, a.num, a.scale, a.flag, a.mode, a.opt_int, a.opt_mode, a.tune)
    assert got == ((), 1, 1.0, False, "max", 7, None, 64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.num = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    "raw, want",
    [("(3, 3)", (3, 3)), ("(3,)", (3,)), ("[2, 5]", (2, 5)), ("(1,2,)", (1, 2)), (" (4, 4) ", (4, 4)),
     ("3", (3,)), ("()", ()), ("[]", ())],
)
def test_tuple(raw, want):
    v = parse(stride=raw).stride
    assert v == want and type(v) is tuple and all(type(x) is int for x in v)


def test_tuple_of_optional_elements():
    assert parse(pad="(None, 2)").pad == (None, 2)
    with pytest.raises(AttributeParseError, match="None is not allowed"):
        parse(kernel="(None, 2)")


@pytest.mark.parametrize("raw, want", [("4", 4), (" -1 ", -1), ("0", 0)])
def test_int(raw, want):
    v = parse(num=raw).num
    assert v == want and type(v) is int


@pytest.mark.parametrize("raw", ["4.0", "4.5", "1e3", "True", "four", "(4,)", ""])
def test_int_rejects_non_integers(raw):
    with pytest.raises(AttributeParseError) as ei:
        parse(num=raw)
    assert ei.value.attr == "num" and ei.value.raw == raw


@pytest.mark.parametrize(
    "raw, want", [("2", 2.0), ("1e-05", 1e-5), ("-0.5", -0.5), ("0.0010000000474974513", 0.0010000000474974513)]
)
def test_float(raw, want):
    v = parse(scale=raw).scale
    assert v == want and type(v) is float


@pytest.mark.parametrize("raw", ["fast", "None", "", "(1.0,)"])
def test_float_rejects(raw):
    with pytest.raises(AttributeParseError, match="scale"):
        parse(scale=raw)


@pytest.mark.parametrize(
    "raw, want", [("True", True), ("False", False), ("1", True), ("0", False), ("true", True), ("false", False)]
)
def test_bool(raw, want):
    assert parse(flag=raw).flag is want


@pytest.mark.parametrize("raw", ["yes", "2", "None", ""])
def test_bool_rejects(raw):
    with pytest.raises(AttributeParseError, match="expected a boolean"):
        parse(flag=raw)


@pytest.mark.parametrize("raw, want", [("TRUE", True), ("FALSE", False)])
def test_bool_accepts_what_mxnet_accepts(raw, want):
    assert parse(flag=raw).flag is want


def test_literal():
    assert parse(mode="avg").mode == "avg"
    for bad in ("min", "MAX", "None"):
        with pytest.raises(AttributeParseError, match=r"expected one of 'max', 'avg'"):
            parse(mode=bad)


@pytest.mark.parametrize(
    "key, raw, want",
    [("opt_int", "None", None), ("opt_int", "", None), ("opt_int", "3", 3),
     ("opt_mode", "None", None), ("opt_mode", "slow", "slow")],
)
def test_optional(key, raw, want):
    assert getattr(parse(**{key: raw}), key) == want


@pytest.mark.parametrize("key, raw", [("opt_int", "x"), ("opt_int", "1.5"), ("opt_mode", "medium")])
def test_optional_rejects_bad_values(key, raw):
    with pytest.raises(AttributeParseError, match=key):
        parse(**{key: raw})


def test_meta_keys_are_skipped():
    meta = {"__shape__": "(1, 2)", "__lr_mult__": "0.1", "__init__": '["zero", {}]', "__dtype__": "0"}
    assert parse(**meta) == parse()
    assert parse_attrs(NoAttrs, meta, op="relu", node="r") == NoAttrs()


def test_unknown_attribute_names_node_op_and_attribute():
    with pytest.raises(AttributeParseError) as ei:
        parse(bogus="1")
    e = ei.value
    assert (e.node, e.op, e.attr, e.raw) == ("n0", "Demo", "bogus", "1")
    assert "Demo 'n0'" in str(e) and "bogus" in str(e) and "unknown attribute" in str(e)
    with pytest.raises(AttributeParseError, match="axis"):
        parse_attrs(NoAttrs, {"axis": "1"}, op="relu", node="r")


def test_required_attribute_missing():
    with pytest.raises(AttributeParseError) as ei:
        parse_attrs(Demo, {"num": "2", "__shape__": "(1,)"}, op="Demo", node="n0")
    assert ei.value.attr == "kernel" and "required" in str(ei.value) and "Demo 'n0'" in str(ei.value)


@pytest.mark.parametrize(
    "key, raw",
    [("kernel", "(3,x)"), ("kernel", "(3, 3.5)"), ("kernel", "(3, None)"), ("kernel", "'abc'"), ("kernel", "True"),
     ("stride", "{1: 2}"), ("num", "abc"), ("scale", "fast"), ("flag", "maybe"), ("mode", "min"), ("opt_int", "1.5")],
)
def test_malformed_value_message(key, raw):
    with pytest.raises(AttributeParseError) as ei:
        parse(**{key: raw})
    e, msg = ei.value, str(ei.value)
    assert (e.node, e.op, e.attr, e.raw) == ("n0", "Demo", key, raw)
    for part in ("'n0'", "Demo", key, raw):
        assert part in msg, f"{part!r} missing from {msg!r}"


# ---- every registered schema against MXNet's own declaration of the op -------------------------------------------


class Decl(NamedTuple):
    text: str
    required: bool
    default: Optional[str]  # as a string, like a JSON symbol carries it
    enum: tuple[str, ...]


def _decl(text: str) -> Decl:
    """Read op_arguments' "int, optional, default='1'", "{None, 'a'},optional, default='None'", "int, required"."""
    m = re.search(r"default=(.*)$", text)
    default = m.group(1).strip() if m else None
    if default and len(default) >= 2 and default[0] == default[-1] and default[0] in "'\"":
        default = default[1:-1]
    e = re.match(r"\{(.*?)\}", text)
    enum = tuple(v.strip().strip("'") for v in e.group(1).split(",")) if e else ()
    return Decl(text, m is None and "required" in text, default, enum)


# One valid value per attribute MXNet declares required (no default).
def _sample(decl: str) -> str:
    """A valid value for a required attribute MXNet declares as `decl` (e.g. 'int, required')."""
    kind = decl.split(",")[0].strip().lower()
    if kind.startswith(("shape", "tuple")):
        return "(2, 2)"
    if kind.startswith("int"):
        return "2"
    if kind.startswith(("float", "double")):
        return "1.0"
    if kind.startswith("boolean"):
        return "True"
    if kind.startswith("{"):
        return kind[1:].split(",")[0].strip().strip("'")
    raise AssertionError(f"no sample value for a required attribute declared {decl!r}: add it to REQUIRED_SAMPLES")


REQUIRED_SAMPLES = {"act_type": "relu", "num_args": "2", "kernel": "(3, 3)", "num_filter": "8", "num_hidden": "4",
                    "a_min": "0", "a_max": "6"}


@pytest.mark.parametrize("op", list(REGISTRY))
def test_schema_agrees_with_mxnet(op):
    cls = REGISTRY.get(op).attrs
    declared = {k: _decl(v) for k, v in op_arguments(op).items()}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    used = {n: f for n, f in fields.items() if not f.metadata.get("ignored")}
    for name, f in used.items():
        assert name in declared, f"{op}: schema field {name!r} is not an MXNet argument (MXNet has {sorted(declared)})"
        required = f.default is dataclasses.MISSING
        mx_decl = declared[name].text
        assert required == declared[name].required, f"{op}.{name}: schema required={required}, MXNet: {mx_decl}"

    # MXNet's full set of defaulted attributes, as strings (plus a value for each required one), must parse.
    raw = {k: d.default for k, d in declared.items() if d.default is not None}
    raw.update({k: REQUIRED_SAMPLES.get(k) or _sample(d.text) for k, d in declared.items() if d.required})
    parsed = parse_attrs(cls, raw, op=op, node="n")

    for name, f in used.items():
        d = declared[name]
        if d.default is None:
            continue
        got, want = getattr(parsed, name), f.default
        if isinstance(want, float) and d.text.startswith("float"):  # MXNet stores 'float' fields as float32
            got, want = np.float32(got), np.float32(want)
        assert got == want, f"{op}.{name}: MXNet default {d.default!r} parses to {got!r}, schema default is {want!r}"

    # Every enum value MXNet accepts must parse too.
    for name, d in declared.items():
        for value in d.enum:
            parse_attrs(cls, {**raw, name: value}, op=op, node="n")


def test_gluon_exported_attributes_parse():
    """Gluon layers write every attribute explicitly (layout='NCHW', no_bias='False', ...): all must parse."""
    from mxnet import gluon

    net = gluon.nn.HybridSequential()
    nn = gluon.nn
    net.add(nn.Conv2D(8, 3, padding=1), nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(), nn.AvgPool2D(),
            nn.GlobalAvgPool2D(), nn.Dropout(0.3), nn.Flatten(), nn.Dense(4))
    sym = mx.sym.softmax(mx.sym.clip(net(mx.sym.var("data")) * 2 + 1, 0, 6), axis=-1)
    nodes = [n for n in json.loads(sym.tojson())["nodes"] if n["op"] != "null"]
    parsed = {
        n["op"]: parse_attrs(REGISTRY.get(n["op"]).attrs, n.get("attrs", {}), op=n["op"], node=n["name"]) for n in nodes
    }
    assert set(parsed) >= {"Convolution", "BatchNorm", "Activation", "Pooling", "Dropout", "Flatten", "FullyConnected",
                           "_mul_scalar", "_plus_scalar", "clip", "softmax"}
    assert parsed["Convolution"].pad == (1, 1) and parsed["Convolution"].layout == "NCHW"
    assert parsed["BatchNorm"].eps == 1e-5 and parsed["BatchNorm"].fix_gamma is False
    assert parsed["_mul_scalar"].scalar == 2.0 and parsed["clip"].a_max == 6.0
