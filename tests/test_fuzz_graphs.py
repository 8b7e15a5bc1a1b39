"""Whole-pipeline fuzzing: random but valid MXNet graphs through fold -> partition -> build -> rewrite -> runtime.

`graphs()` draws a program over one 4-D float input: convolutions, pooling, BatchNorm (with aux states),
activations, elementwise and broadcast arithmetic between branches, Concat, reshaping and slicing, softmax,
FullyConnected, int32 regions (Cast to int32 -> data movement -> Cast back) whose tensors cross engine boundaries,
zeros_like/ones_like, SliceChannel (several outputs), nodes that stay in MXNet (a Python CustomOp) or that a
validator refuses, nodes read by several consumers, and graph outputs that are intermediate tensors or one tensor
twice. The strategy tracks every tensor's shape and dtype; `build` checks them against MXNet's own inference, so a
strategy error shows up as such rather than as a converter failure.

Run `MX2TRT_EXAMPLES=300 pytest -q tests/test_fuzz_graphs.py` (1200 graphs, a few minutes) to hunt for bugs; CI draws
48 graphs (4x the default profile's 12) in about 10 s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import given, note, settings
from hypothesis import strategies as st

import mx2trt
from mx2trt._mx import mx
from mx2trt.partition import TENSORRT, PartitionOptions, partition

from harness import FP16_RTOL, check_graph, max_rel_error, mxnet_only, run_symbol

DATA_SHAPE = (2, 4, 6, 6)
F32, F16, I32 = "float32", "float16", "int32"

@dataclass
class Tensor:
    shape: tuple[int, ...]
    dtype: str  # F32 or I32
    # Holds exactly what MXNet computes, in any engine: values of the data input (float16-representable when the
    # precision is fp16) moved, selected (relu, max) or compared, and small integers. Only such tensors are cast to
    # int32 (after a multiplication by 4, also exact) or compared in fp16: no result depends on the engine's rounding.
    exact: bool


@dataclass
class Step:
    """One node of the program: `kind` reads tensors `ins` (indices into the tensor list) and appends `outs` tensors."""

    kind: str
    ins: list[int]
    attrs: dict[str, Any]
    outs: list[Tensor] = field(default_factory=list)


@dataclass
class Program:
    steps: list[Step]
    tensors: list[Tensor]
    outputs: list[int]  # tensor indices the graph returns (repeats allowed; 0 is the data input)
    seed: int
    precision: str

    def __str__(self) -> str:
        lines = [f"precision={self.precision} seed={self.seed} data{DATA_SHAPE}"]
        k = 1
        for i, s in enumerate(self.steps):
            outs = ", ".join(f"t{k + j}{t.shape}{'' if t.dtype == F32 else t.dtype}" for j, t in enumerate(s.outs))
            lines.append(f"  n{i}: {outs} = {s.kind}({', '.join(f't{j}' for j in s.ins)}) {s.attrs}")
            k += len(s.outs)
        lines.append(f"  outputs: {['t%d' % j for j in self.outputs]}")
        return "\n".join(lines)


# ---- the strategy ----------------------------------------------------------------------------------------------------

# float32 kinds (repeats weight the draw); int32 and float16 tensors get data movement, exact arithmetic and a Cast
# back to float32 (SIDE_KINDS).
FLOAT_KINDS = ["conv", "conv", "deconv", "pool", "pool", "bn", "layernorm", "act", "act", "binary", "binary", "where",
               "compare", "reduce", "concat", "stack", "reshape", "flatten", "transpose", "slice_axis", "slice",
               "expand_dims", "squeeze", "broadcast_axis", "broadcast_like", "tile", "pad", "upsample", "dropout",
               "softmax", "fc", "cast_int", "cast_int", "cast_half", "zeros_like", "split", "mxnet_only",
               "mxnet_only", "refused"]
MOVE_KINDS = ["reshape", "flatten", "transpose", "slice_axis", "slice", "expand_dims", "squeeze", "broadcast_axis",
              "tile", "concat", "stack", "split", "zeros_like"]
SIDE_KINDS = MOVE_KINDS + ["cast_float"] * 4 + ["side_arith"] * 3


def _pick(draw: Any, cands: list[int]) -> int:
    """A candidate tensor, most often the newest (depth) and otherwise any earlier one (branches, shared inputs)."""
    if draw(st.booleans()):
        return cands[-1]
    return draw(st.sampled_from(cands))


def _step(draw: Any, tensors: list[Tensor], precision: str) -> Step | None:
    """Draw one valid step on the current tensors, or None when the drawn kind does not fit them."""
    floats = [i for i, t in enumerate(tensors) if t.dtype == F32]
    side = [i for i, t in enumerate(tensors) if t.dtype != F32]
    if side and draw(st.booleans()):
        kind, pool = draw(st.sampled_from(SIDE_KINDS)), side
    else:
        kind, pool = draw(st.sampled_from(FLOAT_KINDS)), floats
    a = _pick(draw, pool)
    t = tensors[a]
    rank, shape = len(t.shape), t.shape
    f = lambda s, exact=False: Tensor(tuple(s), t.dtype, exact)  # noqa: E731
    same = [i for i, u in enumerate(tensors) if u.shape == shape and u.dtype == t.dtype]  # `a` itself at least

    if kind in ("conv", "deconv", "pool", "pad", "upsample") and rank != 4:
        return None
    if kind == "conv":
        n, c, h, w = shape
        k = draw(st.sampled_from([1, 3])) if min(h, w) >= 3 else 1
        stride = draw(st.sampled_from([1, 1, 2]))
        p = k // 2
        nf = draw(st.integers(2, 5))
        oh, ow = (h + 2 * p - k) // stride + 1, (w + 2 * p - k) // stride + 1
        attrs = dict(kernel=(k, k), pad=(p, p), stride=(stride, stride), num_filter=nf, no_bias=draw(st.booleans()),
                     c_in=c)
        return Step(kind, [a], attrs, [Tensor((n, nf, oh, ow), F32, False)])
    if kind == "deconv":
        n, c, h, w = shape
        k, stride, p = draw(st.sampled_from([(2, 2, 0), (3, 1, 1), (3, 2, 1), (1, 1, 0)]))
        nf = draw(st.integers(2, 4))
        oh, ow = (h - 1) * stride - 2 * p + k, (w - 1) * stride - 2 * p + k
        attrs = dict(kernel=(k, k), pad=(p, p), stride=(stride, stride), num_filter=nf, no_bias=draw(st.booleans()),
                     c_in=c)
        return Step(kind, [a], attrs, [Tensor((n, nf, oh, ow), F32, False)])
    if kind == "pool":
        n, c, h, w = shape
        mode = draw(st.sampled_from(["k2s2", "k3s1p1", "global", "k3s2full"]))
        if mode in ("k2s2", "k3s2full") and min(h, w) < 2:
            mode = "global"
        pool_type = draw(st.sampled_from(["max", "avg"]))
        if mode == "global":
            attrs, out = dict(kernel=(1, 1), global_pool=True), (n, c, 1, 1)
        elif mode == "k2s2":
            attrs, out = dict(kernel=(2, 2), stride=(2, 2)), (n, c, h // 2, w // 2)
        elif mode == "k3s2full":  # the ceil convention: a partial last window
            attrs = dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pooling_convention="full")
            out = (n, c, -(-(h - 1) // 2) + 1, -(-(w - 1) // 2) + 1)
        else:
            attrs, out = dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1)), (n, c, h, w)
        if pool_type == "avg" and mode != "global" and draw(st.booleans()):
            attrs["count_include_pad"] = False
        attrs["pool_type"] = pool_type
        return Step(kind, [a], attrs, [Tensor(out, F32, t.exact and pool_type == "max")])
    if kind == "refused":  # validators refuse these (docs/ops.md): sum pooling, clip with a_min > a_max
        if rank == 4 and min(shape[2:]) >= 2 and draw(st.booleans()):
            attrs = dict(how="sum_pool", kernel=(2, 2), stride=(2, 2), pool_type="sum")
            return Step(kind, [a], attrs, [Tensor(shape[:2] + (shape[2] // 2, shape[3] // 2), F32, False)])
        return Step(kind, [a], dict(how="clip", a_min=0.5, a_max=-0.5), [f(shape)])
    if kind == "pad":
        mode = draw(st.sampled_from(["constant", "edge", "reflect"]))
        pads = [draw(st.integers(0, min(1, d - 1) if mode == "reflect" else 2)) for d in shape[2:] for _ in (0, 1)]
        out = shape[:2] + (shape[2] + pads[0] + pads[1], shape[3] + pads[2] + pads[3])
        attrs = dict(mode=mode, pad_width=(0, 0, 0, 0) + tuple(pads), constant_value=0.5)
        return Step(kind, [a], attrs, [f(out, t.exact)])
    if kind == "upsample":
        scale = draw(st.sampled_from([1, 2]))
        return Step(kind, [a], dict(scale=scale), [f(shape[:2] + (shape[2] * scale, shape[3] * scale), t.exact)])
    if kind == "bn":
        if rank < 2:
            return None
        return Step(kind, [a], dict(fix_gamma=draw(st.booleans()), c=shape[1]), [f(shape)])
    if kind == "layernorm":  # over 2 or 3 values it amplifies last-bit differences of its input by ~1/sqrt(eps)
        axes = [d for d in range(-rank, rank) if shape[d] >= 4]
        if not axes:
            return None
        axis = draw(st.sampled_from(axes))
        return Step(kind, [a], dict(axis=axis, c=shape[axis]), [f(shape)])
    if kind == "act":
        act = draw(st.sampled_from(["relu", "sigmoid", "tanh", "softrelu", "leaky", "elu"]))
        return Step(kind, [a], dict(act=act), [f(shape, t.exact and act == "relu")])
    if kind == "softmax":
        axis = draw(st.integers(-rank, rank - 1))
        return Step(kind, [a], dict(axis=axis, op=draw(st.sampled_from(["softmax", "softmax", "log_softmax"]))),
                    [f(shape)])
    if kind == "fc":
        if rank < 2:
            return None
        hidden = draw(st.sampled_from([3, 5]))
        flatten = draw(st.booleans())
        out = (shape[0], hidden) if flatten else shape[:-1] + (hidden,)
        fan_in = math.prod(shape[1:]) if flatten else shape[-1]
        attrs = dict(num_hidden=hidden, flatten=flatten, fan_in=fan_in, no_bias=draw(st.booleans()))
        return Step(kind, [a], attrs, [Tensor(out, F32, False)])
    if kind == "binary":
        bcast = [i for i in floats if len(tensors[i].shape) == rank and tensors[i].shape != shape
                 and all(x == y or x == 1 or y == 1 for x, y in zip(tensors[i].shape, shape))]
        if bcast and draw(st.booleans()):
            b = draw(st.sampled_from(bcast))
            op = draw(st.sampled_from(["broadcast_add", "broadcast_sub", "broadcast_mul", "broadcast_maximum"]))
            out = tuple(max(x, y) for x, y in zip(shape, tensors[b].shape))
        else:
            b = draw(st.sampled_from(same))
            op = draw(st.sampled_from(["elemwise_add", "elemwise_sub", "elemwise_mul", "broadcast_minimum"]))
            out = shape
        ins = [a, b] if draw(st.booleans()) else [b, a]
        exact = op in ("broadcast_maximum", "broadcast_minimum") and t.exact and tensors[b].exact
        return Step(kind, ins, dict(op=op), [Tensor(out, F32, exact)])
    if kind == "where":  # an inexact condition near 0 could flip in an fp16 engine, as for compare
        conds = [i for i in same if tensors[i].exact or precision == "fp32"]
        if not conds:
            return None
        cond, other = draw(st.sampled_from(conds)), draw(st.sampled_from(same))
        return Step(kind, [cond, a, other], {}, [f(shape, t.exact and tensors[other].exact)])
    if kind == "compare":  # 0/1; a comparison of an inexact value near the threshold could flip in an fp16 engine
        if not t.exact and precision != "fp32":
            return None
        op = draw(st.sampled_from(["_greater_scalar", "_lesser_equal_scalar", "_equal_scalar"]))
        return Step(kind, [a], dict(op=op, scalar=0.0), [f(shape, True)])
    if kind == "reduce":
        op = draw(st.sampled_from(["sum", "mean", "max"]))
        axis = draw(st.integers(0, rank - 1))
        keep = draw(st.booleans()) or rank == 1
        out = shape[:axis] + ((1,) if keep else ()) + shape[axis + 1:]
        return Step(kind, [a], dict(op=op, axis=axis, keepdims=keep), [f(out, t.exact and op == "max")])
    if kind == "dropout":
        op = draw(st.sampled_from(["Dropout", "BlockGrad", "identity"]))
        return Step(kind, [a], dict(op=op), [f(shape, t.exact)])
    if kind in ("concat", "stack"):
        if kind == "stack" and rank >= 6:
            return None
        axis = draw(st.integers(0, rank - 1 if kind == "concat" else rank))
        cands = same if kind == "stack" else [
            i for i, u in enumerate(tensors) if u.dtype == t.dtype and len(u.shape) == rank
            and all(x == y for d, (x, y) in enumerate(zip(u.shape, shape)) if d != axis)]
        b = draw(st.sampled_from(cands))
        if kind == "stack":
            out = shape[:axis] + (2,) + shape[axis:]
        else:
            out = tuple(x + y if d == axis else x for d, (x, y) in enumerate(zip(shape, tensors[b].shape)))
        return Step(kind, [a, b], dict(dim=axis), [f(out, t.exact and tensors[b].exact)])
    if kind == "reshape":
        total = math.prod(shape)
        mode = draw(st.sampled_from(["batch_flat", "merge", "split", "all"]))
        if mode == "merge" and rank >= 2:
            i = draw(st.integers(0, rank - 2))
            out = shape[:i] + (shape[i] * shape[i + 1],) + shape[i + 2:]
            spec = tuple(out) if draw(st.booleans()) else tuple([0] * i + [-3] + [0] * (rank - i - 2))
        elif mode == "split" and any(d % 2 == 0 for d in shape) and rank < 6:
            i = draw(st.sampled_from([d for d in range(rank) if shape[d] % 2 == 0]))
            out = shape[:i] + (2, shape[i] // 2) + shape[i + 1:]
            spec = tuple(out) if draw(st.booleans()) else tuple([0] * i + [-4, 2, -1] + [0] * (rank - i - 1))
        elif mode == "all":
            out, spec = (total,), (-1,)
        else:
            out, spec = (shape[0], total // shape[0]), (0, -1)
        return Step(kind, [a], dict(shape=spec), [f(out, t.exact)])
    if kind == "flatten":
        if rank < 2:
            return None
        return Step(kind, [a], {}, [f((shape[0], math.prod(shape[1:])), t.exact)])
    if kind == "transpose":
        if rank < 2:
            return None
        perm = tuple(draw(st.permutations(range(rank))))
        return Step(kind, [a], dict(axes=perm), [f(tuple(shape[p] for p in perm), t.exact)])
    if kind in ("slice_axis", "slice"):
        axes = [d for d in range(rank) if shape[d] >= 2]
        if not axes or kind == "slice" and rank > 5:  # MXNet's slice kernel: at most 5 dims
            return None
        axis = draw(st.sampled_from(axes))
        begin = draw(st.integers(0, shape[axis] - 1))
        end = draw(st.integers(begin + 1, shape[axis]))
        step = draw(st.sampled_from([1, 1, 2])) if kind == "slice" else 1
        out = shape[:axis] + (len(range(begin, end, step)),) + shape[axis + 1:]
        if kind == "slice":
            attrs = dict(begin=tuple(begin if d == axis else None for d in range(rank)),
                         end=tuple(end if d == axis else None for d in range(rank)),
                         step=tuple(step if d == axis else None for d in range(rank)))
        else:
            attrs = dict(axis=axis, begin=begin, end=None if end == shape[axis] and draw(st.booleans()) else end)
        return Step(kind, [a], attrs, [f(out, t.exact)])
    if kind == "expand_dims":
        if rank >= 6:
            return None
        axis = draw(st.integers(0, rank))
        return Step(kind, [a], dict(axis=axis), [f(shape[:axis] + (1,) + shape[axis:], t.exact)])
    if kind == "squeeze":
        ones = [d for d in range(rank) if shape[d] == 1]
        if not ones or rank == 1:
            return None
        axis = draw(st.sampled_from(ones))
        return Step(kind, [a], dict(axis=axis), [f(shape[:axis] + shape[axis + 1:], t.exact)])
    if kind in ("broadcast_axis", "broadcast_like"):
        ones = [d for d in range(rank) if shape[d] == 1]
        if not ones:
            return None
        if kind == "broadcast_like":
            like = [i for i, u in enumerate(tensors) if len(u.shape) == rank and u.shape != shape and u.dtype == t.dtype
                    and all(x == y or x == 1 for x, y in zip(shape, u.shape))]
            if not like:
                return None
            b = draw(st.sampled_from(like))
            return Step(kind, [a, b], {}, [f(tensors[b].shape, t.exact)])
        axis = draw(st.sampled_from(ones))
        size = draw(st.integers(2, 3))
        return Step(kind, [a], dict(axis=axis, size=size), [f(shape[:axis] + (size,) + shape[axis + 1:], t.exact)])
    if kind == "tile":
        if rank > 4:
            return None
        reps = [1] * draw(st.integers(1, rank + 1))
        for i in draw(st.lists(st.integers(0, len(reps) - 1), max_size=2)):  # MXNet's kernel: at most 2 tiled axes
            reps[i] = 2
        reps = tuple(reps)
        full = (1,) * (len(reps) - rank) + shape if len(reps) > rank else shape
        r = (1,) * (len(full) - len(reps)) + reps
        return Step(kind, [a], dict(reps=reps), [f(tuple(x * y for x, y in zip(full, r)), t.exact)])
    if kind == "zeros_like":
        which = draw(st.sampled_from(["zeros_like", "ones_like"]))
        return Step(kind, [a], dict(op=which), [f(shape, True)])
    if kind == "split":
        cands = [(d, k) for d in range(rank) for k in (2, 3) if shape[d] % k == 0]
        if not cands:
            return None
        axis, k = draw(st.sampled_from(cands))
        squeeze = shape[axis] == k and rank > 1 and draw(st.booleans())
        part = shape[:axis] + (() if squeeze else (shape[axis] // k,)) + shape[axis + 1:]
        attrs = dict(axis=axis, num_outputs=k, squeeze_axis=squeeze)
        return Step(kind, [a], attrs, [f(part, t.exact) for _ in range(k)])
    if kind == "mxnet_only":
        return Step(kind, [a], {}, [f(shape)])
    if kind == "cast_int":
        exact = [i for i in floats if tensors[i].exact]
        a = _pick(draw, exact)  # the data input at least
        # times 4 first (more distinct integers), or the engine's own float input (an fp16 engine casts only those)
        return Step(kind, [a], dict(x4=draw(st.booleans())), [Tensor(tensors[a].shape, I32, True)])
    if kind == "cast_half":  # float16 tensors: only exact ops on them (the engine computes them in its own dtype)
        if not t.exact and precision == "fp32":  # an fp32 engine's last-bit difference could round to the next fp16
            return None
        return Step(kind, [a], {}, [Tensor(shape, F16, False)])
    if kind == "cast_float":
        return Step(kind, [a], {}, [Tensor(shape, F32, t.exact)])
    if kind == "side_arith":  # exact: int32 +, -, max, min (no division: by 0); float16 max, min
        b = draw(st.sampled_from(same))
        ops = ["broadcast_maximum", "broadcast_minimum"] + (["elemwise_add", "elemwise_sub"] if t.dtype == I32 else [])
        return Step(kind, [a, b], dict(op=draw(st.sampled_from(ops))), [f(shape, t.exact)])
    raise AssertionError(kind)


@st.composite
def graphs(draw: Any, max_steps: int = 14) -> Program:
    """A random program (see the module docstring); its graph outputs are the tensors no node reads, plus a few
    drawn ones (repeats allowed, the data input among them)."""
    precision = draw(st.sampled_from(["fp32", "fp32", "fp32", "fp16"]))
    tensors = [Tensor(DATA_SHAPE, F32, True)]
    steps: list[Step] = []
    n = draw(st.integers(1, max_steps))
    while len(steps) < n:
        s = _step(draw, tensors, precision)
        if s is None:
            continue
        steps.append(s)
        tensors += s.outs
    # A tensor read only by zeros_like/ones_like is returned too: MXNet's executor, seeing nobody needs its values,
    # asks its producer for no output (kNullOp), which some kernels (Convolution) refuse.
    read = {i for s in steps if s.kind != "zeros_like" for i in s.ins}
    outputs = [i for i in range(1, len(tensors)) if i not in read]
    outputs += draw(st.lists(st.integers(0, len(tensors) - 1), max_size=2))
    outputs = draw(st.permutations(outputs)) if outputs else [len(tensors) - 1]
    return Program(steps, tensors, list(outputs), draw(st.integers(0, 2**16)), precision)


# ---- from a program to a symbol and its values -----------------------------------------------------------------------


@dataclass
class Built:
    sym: Any
    data: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
    in_mxnet: list[str]  # nodes that must stay in MXNet (no converter, or a validator refuses them)
    names: list[str]  # every op node's name


def _round16(x: Any, name: str) -> Any:
    return mx.sym.Cast(mx.sym.Cast(x, dtype="float16", name=f"{name}_h"), dtype="float32", name=f"{name}_f")


def build(prog: Program, round16: bool = False) -> Built:
    """The program's symbol, input data and parameters (seeded by `prog.seed`; float16-representable for fp16).

    round16=True rounds every inexact float tensor to float16 (Cast there and back): MXNet's own run of the graph
    with an fp16 engine's rounding between ops, which measures how much this graph amplifies that rounding."""
    rng = np.random.default_rng(prog.seed)
    fp16 = prog.precision == "fp16"
    rep = (lambda a: a.astype(np.float16).astype(np.float32)) if fp16 else (lambda a: a)  # noqa: E731
    params: dict[str, np.ndarray] = {}
    in_mxnet: list[str] = []
    names: list[str] = []

    def weight(name: str, shape: tuple[int, ...], scale: float, lo: float | None = None) -> Any:
        if lo is None:
            v = rng.standard_normal(shape) * scale
        else:
            v = rng.uniform(lo, scale, shape)
        params[name] = rep(v.astype(np.float32))
        return mx.sym.var(name)

    syms: list[Any] = [mx.sym.var("data")]
    for i, s in enumerate(prog.steps):
        nm, x, at = f"n{i}", [syms[j] for j in s.ins], s.attrs
        k = s.kind
        if k in ("conv", "deconv"):  # weight (out, in, k, k) for Convolution, (in, out, k, k) for Deconvolution
            kh, c_in, c_out = at["kernel"][0], at["c_in"], at["num_filter"]
            w = weight(f"{nm}_weight", ((c_out, c_in) if k == "conv" else (c_in, c_out)) + (kh, kh),
                       1 / math.sqrt(c_in * kh * kh))
            b = {} if at["no_bias"] else {"bias": weight(f"{nm}_bias", (c_out,), 0.1)}
            op = mx.sym.Convolution if k == "conv" else mx.sym.Deconvolution
            out = op(x[0], weight=w, kernel=at["kernel"], pad=at["pad"], stride=at["stride"], num_filter=c_out,
                     no_bias=at["no_bias"], name=nm, **b)
        elif k == "pool":
            out = mx.sym.Pooling(x[0], name=nm, **at)
        elif k == "pad":
            out = mx.sym.Pad(x[0], name=nm, **at)
        elif k == "upsample":
            out = mx.sym.UpSampling(x[0], scale=at["scale"], sample_type="nearest", num_args=1, name=nm)
        elif k == "layernorm":
            c = at["c"]
            gamma, beta = weight(f"{nm}_gamma", (c,), 1.5, 0.5), weight(f"{nm}_beta", (c,), 0.5)
            out = mx.sym.LayerNorm(x[0], gamma, beta, axis=at["axis"], name=nm)
        elif k == "where":
            out = mx.sym.where(x[0], x[1], x[2], name=nm)
        elif k == "compare":
            out = getattr(mx.sym._internal, at["op"])(x[0], scalar=at["scalar"], name=nm)
        elif k == "reduce":
            out = getattr(mx.sym, at["op"])(x[0], axis=at["axis"], keepdims=at["keepdims"], name=nm)
        elif k == "dropout":
            fn = {"Dropout": lambda v, name: mx.sym.Dropout(v, p=0.5, name=name),
                  "BlockGrad": mx.sym.BlockGrad, "identity": mx.sym.identity}[at["op"]]
            out = fn(x[0], name=nm)
        elif k == "stack":
            out = mx.sym.stack(x[0], x[1], axis=at["dim"], name=nm)
        elif k == "squeeze":
            out = mx.sym.squeeze(x[0], axis=at["axis"], name=nm)
        elif k == "broadcast_like":
            out = mx.sym.broadcast_like(x[0], x[1], name=nm)
        elif k == "tile":
            out = mx.sym.tile(x[0], reps=at["reps"], name=nm)
        elif k == "cast_half":
            out = mx.sym.Cast(x[0], dtype="float16", name=nm)
        elif k == "refused":
            in_mxnet.append(nm)
            if at["how"] == "clip":
                out = mx.sym.clip(x[0], a_min=at["a_min"], a_max=at["a_max"], name=nm)
            else:
                out = mx.sym.Pooling(x[0], kernel=at["kernel"], stride=at["stride"], pool_type="sum", name=nm)
        elif k == "bn":
            c = at["c"]
            gamma, beta = weight(f"{nm}_gamma", (c,), 1.5, 0.5), weight(f"{nm}_beta", (c,), 0.5)
            mean, var = weight(f"{nm}_moving_mean", (c,), 0.5), weight(f"{nm}_moving_var", (c,), 1.5, 0.5)
            out = mx.sym.BatchNorm(x[0], gamma, beta, mean, var, fix_gamma=at["fix_gamma"], name=nm)
        elif k == "act":
            if at["act"] in ("leaky", "elu"):
                out = mx.sym.LeakyReLU(x[0], act_type=at["act"], slope=0.25, name=nm)
            else:
                out = mx.sym.Activation(x[0], act_type=at["act"], name=nm)
        elif k == "softmax":
            out = getattr(mx.sym, at["op"])(x[0], axis=at["axis"], name=nm)
        elif k == "fc":
            w = weight(f"{nm}_weight", (at["num_hidden"], at["fan_in"]), 1 / math.sqrt(at["fan_in"]))
            b = {} if at["no_bias"] else {"bias": weight(f"{nm}_bias", (at["num_hidden"],), 0.1)}
            out = mx.sym.FullyConnected(x[0], weight=w, num_hidden=at["num_hidden"], flatten=at["flatten"],
                                        no_bias=at["no_bias"], name=nm, **b)
        elif k == "binary":
            out = getattr(mx.sym, at["op"])(x[0], x[1], name=nm)
        elif k == "concat":
            out = mx.sym.concat(x[0], x[1], dim=at["dim"], name=nm)
        elif k == "reshape":
            out = mx.sym.reshape(x[0], shape=at["shape"], name=nm)
        elif k == "flatten":
            out = mx.sym.flatten(x[0], name=nm)
        elif k == "transpose":
            out = mx.sym.transpose(x[0], axes=at["axes"], name=nm)
        elif k == "slice_axis":
            out = mx.sym.slice_axis(x[0], name=nm, **at)
        elif k == "slice":
            out = mx.sym.slice(x[0], name=nm, **at)
        elif k == "expand_dims":
            out = mx.sym.expand_dims(x[0], axis=at["axis"], name=nm)
        elif k == "broadcast_axis":
            out = mx.sym.broadcast_axis(x[0], axis=at["axis"], size=at["size"], name=nm)
        elif k == "zeros_like":
            out = getattr(mx.sym, at["op"])(x[0], name=nm)
        elif k == "split":
            out = mx.sym.SliceChannel(x[0], name=nm, **at)
        elif k == "mxnet_only":
            in_mxnet.append(nm)
            out = mxnet_only(x[0], nm)
        elif k == "cast_int":
            if at["x4"]:
                names.append(f"{nm}_x4")
                x[0] = mx.sym._internal._mul_scalar(x[0], scalar=4.0, name=f"{nm}_x4")
            out = mx.sym.Cast(x[0], dtype="int32", name=nm)
        elif k == "cast_float":
            out = mx.sym.Cast(x[0], dtype="float32", name=nm)
        elif k == "side_arith":
            out = getattr(mx.sym, at["op"])(x[0], x[1], name=nm)
        else:
            raise AssertionError(k)
        names.append(nm)
        outs = [out[j] for j in range(len(s.outs))] if len(s.outs) > 1 else [out]
        for j, (o, t) in enumerate(zip(outs, s.outs)):
            if round16 and t.dtype == F32 and not t.exact:
                o = _round16(o, f"{nm}_r{j}")
            syms.append(o)
    sym = mx.sym.Group([syms[j] for j in prog.outputs])
    data = rng.standard_normal(DATA_SHAPE).astype(np.float32)
    return Built(sym, {"data": rep(data)}, params, in_mxnet, names)


def check_shapes(prog: Program, b: Built) -> None:
    """The strategy's shapes and dtypes are MXNet's (else the strategy, not mx2trt, is wrong)."""
    _, out_shapes, _ = b.sym.infer_shape(data=DATA_SHAPE, **{k: v.shape for k, v in b.params.items()})
    _, out_types, _ = b.sym.infer_type(data=np.float32, **{k: v.dtype for k, v in b.params.items()})
    for j, s, d in zip(prog.outputs, out_shapes, out_types):
        t = prog.tensors[j]
        assert (tuple(s), np.dtype(d).name) == (t.shape, t.dtype), f"strategy: t{j} is {s} {d}, tracked {t}"


def rtol_of(prog: Program, b: Built) -> float:
    """The tolerance of this graph, from how much it amplifies rounding between ops.

    `build(round16=True)` is MXNet's own run with every inexact op's output rounded to float16: its error relative to
    the plain run, `e16`, is what a unit roundoff of 2^-11 per op turns into at the outputs. An fp16 engine (inputs
    and weights float16-representable, as `exact_in` makes them) rounds each layer by the same 2^-11; a converter
    may use a few layers for one op (softmax's scale, BatchNorm's scale and shift) and the two runs round
    independently, so fp16 allows max(FP16_RTOL, 4 * e16). An fp32 engine differs from MXNet's kernels by a few
    roundoffs of 2^-24 per op, so fp32 allows max(1e-5, 4 * e16 * 2^-13), capped at 1e-3: most graphs keep 1e-5, and
    only those that amplify rounding (LayerNorm over a nearly constant axis, subtracting close branches) get more.
    A wrong conversion gives errors that do not shrink with the roundoff."""
    want = run_symbol(b.sym, {**b.data, **b.params})
    emu = build(prog, round16=True)
    got = run_symbol(emu.sym, {**emu.data, **emu.params})
    e16 = max(max_rel_error(g, w) for g, w in zip(got, want))
    if prog.precision == "fp16":
        return max(FP16_RTOL, 4 * e16)
    return min(max(1e-5, 4 * e16 * 2.0**-13), 1e-3)


# Converter refusals found only while converting (the node stays in MXNet, with this reason). None is expected on
# these valid graphs (indices an fp16 engine would round run in float32 inside it): a fall-back is a converter or
# build failure, which the test reports.
EXPECTED_FALLBACKS: tuple[str, ...] = ()


def run_program(prog: Program) -> mx2trt.Conversion:
    """Convert the program's graph and check it against MXNet, the placement and the engine count."""
    b = build(prog)
    check_shapes(prog, b)
    rtol = rtol_of(prog, b)
    note(f"rtol {rtol:.3g}")
    c = check_graph(b.sym, b.data, b.params, in_mxnet=b.in_mxnet, rtol=rtol, precision=prog.precision)
    rows = {r.node: r for r in c.report.rows}
    assert set(rows) == set(b.names), "every op node has a report row"
    fell = [n for n, (_, _, _, why) in rows.items() if why.startswith("fell back to MXNet")]
    for n in fell:
        assert any(e in rows[n].reason for e in EXPECTED_FALLBACKS), f"{n}: {rows[n].reason}"
    graph = c.partition.graph
    for n in graph.op_nodes:
        _, reason = mx2trt.REGISTRY.check(graph, n)
        _, op, where, why = rows[n.name]
        if reason is not None:
            assert where == "mxnet" and why == reason, f"{n.name}: refused ({reason}) but placed in {where}"
        elif where == "mxnet":  # selected by the registry, yet in MXNet: a subgraph of data movement, or a fall-back
            assert "subgraph holds no compute" in why or n.name in fell, f"{n.name} ({op}) stayed in MXNet: {why}"
    # The engines are exactly the subgraphs the partitioner makes with the fallen-back nodes excluded.
    expected = partition(graph, PartitionOptions.make(exclude_nodes=fell))
    assert len(c.engines) == len(expected.subgraphs), c.report.summary()
    assert sorted(sorted(graph.nodes[m].name for m in sg.nodes) for sg in expected.subgraphs) == sorted(
        sorted(graph.nodes[m].name for m in sg.nodes) for sg in c.partition.subgraphs)
    assert sum(p.where == TENSORRT for p in c.partition.placements.values()) == c.report.nodes_trt
    return c


# Examples are cheap (about 0.15 s each on CPU), so this test draws 4x the profile's count: 48 in CI (MX2TRT_EXAMPLES).
@settings(deadline=None, max_examples=4 * settings.default.max_examples)
@given(prog=graphs())
def test_random_graphs_match_mxnet(prog):
    """Random graphs convert without any converter falling back, every node the registry accepts runs in an engine
    (unless its subgraph only moves data), engines are the partition's subgraphs, and outputs match MXNet."""
    note(str(prog))
    run_program(prog)
