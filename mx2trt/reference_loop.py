"""The reference interpreter's loops: ILoop with ITripLimitLayer (COUNT), IRecurrenceLayer, IIteratorLayer and
ILoopOutputLayer (LAST_VALUE, CONCATENATE, REVERSE).

A loop's layers are its boundary layers and its body: every layer that depends on one of its recurrence or iterator
outputs (layers on loop-invariant tensors alone run once, outside it). `fold` replaces them in the network's
topological order by one `Loop`, which reference.py makes one step of: it reads the tensors from outside the loop
that its layers read and gives the outputs of its ILoopOutputLayers. Semantics (TensorRT's "Working with Loops"):
the body runs trip-count times; a recurrence output is its first input in the first iteration, then the value its
second input had in the iteration before; an iterator output is slice i (reverse: T-1-i) of its input along its axis,
that axis removed; LAST_VALUE (of a recurrence output) is the value after the last iteration (the first input for
zero iterations); CONCATENATE and REVERSE stack their input's value of every iteration, in order or reversed, along a
new axis `axis` of the length the layer's second input gives (zeros past the trip count; TensorRT leaves them
undefined).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._trt import downcast, layer_type, np_dtype, trt
from .errors import Mx2TrtError
from .reference import LT, UnsupportedLayerError, _store, depth_first

BOUNDARY = {LT.TRIP_LIMIT, LT.RECURRENCE, LT.ITERATOR, LT.LOOP_OUTPUT}
KINDS = frozenset(k.name for k in BOUNDARY)
# (name, kind, evaluation function, tensors it reads, output tensors) of one layer: reference._layer_fn
LayerFn = Callable[[Any], tuple[str, str, Callable[[list], list], list, list]]


def back_edge(layer: Any, j: int) -> bool:
    """Input j of `layer` is a loop's back edge (a recurrence's next value), which topological order ignores."""
    return j == 1 and layer_type(layer) == LT.RECURRENCE


def _reads(layer: Any) -> list:
    return [layer.get_input(j) for j in range(layer.num_inputs) if not back_edge(layer, j)]


class Loop:
    """The layers of one ILoop (in topological order), evaluated as one step."""

    def __init__(self, name: str, layers: list) -> None:
        self.name = name
        self.layers = layers
        made = {layer.get_output(j) for layer in layers for j in range(layer.num_outputs)}
        self.inputs = list(dict.fromkeys(t for layer in layers for t in _reads(layer)
                                         if t is not None and t not in made))  # tensors from outside the loop

    def compile(self, layer_fn: LayerFn) -> tuple[str, str, Callable[[list], list], list, list]:
        """(name, 'LOOP', evaluation function, tensors it reads, output tensors): what reference._layer_fn gives
        for one layer, for the whole loop; `layer_fn` makes the body's layers."""
        LO = trt.LoopOutput
        trips, recurrences, iterators, outputs, body = [], [], [], [], []
        for layer in self.layers:
            kind = layer_type(layer)
            downcast(layer)
            if kind == LT.TRIP_LIMIT:
                if layer.kind != trt.TripLimit.COUNT:
                    raise UnsupportedLayerError(f"loop '{self.name}': {layer.kind.name} trip limits")
                trips.append(layer.get_input(0))
            elif kind == LT.RECURRENCE:
                out = layer.get_output(0)
                recurrences.append((out, layer.get_input(0), layer.get_input(1), np_dtype(out.dtype)))
            elif kind == LT.ITERATOR:
                iterators.append((layer.get_output(0), layer.get_input(0), int(layer.axis), bool(layer.reverse)))
            elif kind == LT.LOOP_OUTPUT:
                out = layer.get_output(0)
                length = layer.get_input(1) if layer.num_inputs > 1 else None
                outputs.append((layer.kind, layer.get_input(0), int(layer.axis), length, np_dtype(out.dtype), out))
            else:
                name, _, fn, reads, outs = layer_fn(layer)
                body.append((name, fn, reads, outs, [np_dtype(t.dtype) for t in outs]))
        if len(trips) != 1:
            raise UnsupportedLayerError(f"loop '{self.name}' has {len(trips)} trip limits (one is supported)")
        made = {t for r in recurrences for t in r[:1]} | {t for i in iterators for t in i[:1]}
        made |= {t for b in body for t in b[3]}
        wanted = trips + [r[1] for r in recurrences] + [i[1] for i in iterators] + [o[3] for o in outputs]
        wanted += [t for b in body for t in b[2]]  # a fused maker may read other tensors than its layer's inputs
        inputs = list(dict.fromkeys(t for t in wanted if t is not None and t not in made))
        slots = {t: k for k, t in enumerate(inputs)}
        for t in made:
            slots.setdefault(t, len(slots))
        at = lambda t: None if t is None else slots[t]  # noqa: E731
        trip = at(trips[0])
        recurrences = [(at(o), at(i), at(n), dt) for o, i, n, dt in recurrences]
        iterators = [(at(o), at(src), axis, rev) for o, src, axis, rev in iterators]
        outputs_at = [(kind, at(src), axis, at(length), dt, t) for kind, src, axis, length, dt, t in outputs]
        body = [(name, fn, [at(t) for t in reads], [at(t) for t in outs], dts) for name, fn, reads, outs, dts in body]
        num_slots, loop_name = len(slots), self.name
        stacked = [k for k, o in enumerate(outputs_at) if o[0] != LO.LAST_VALUE]

        def run(args: list) -> list:
            values: list[Any] = list(args) + [None] * (num_slots - len(args))
            count = max(int(np.asarray(values[trip])), 0)
            for out, init, _, dtype in recurrences:
                values[out] = _store(values[init], dtype)
            per_iteration: dict[int, list] = {k: [] for k in stacked}
            for i in range(count):
                for out, src, axis, reverse in iterators:
                    x = values[src]
                    if count > x.shape[axis]:
                        raise Mx2TrtError(f"loop '{loop_name}': {count} iterations over an axis of {x.shape[axis]}")
                    values[out] = np.take(x, x.shape[axis] - 1 - i if reverse else i, axis=axis)
                for name, fn, reads, outs, dtypes in body:
                    try:
                        ys = fn([None if s is None else values[s] for s in reads])
                    except Mx2TrtError:
                        raise
                    except Exception as exc:  # name the layer inside the loop, not only the loop
                        raise Mx2TrtError(f"loop '{loop_name}', layer '{name}' failed: {exc}") from exc
                    for s, y, dt in zip(outs, ys, dtypes):
                        values[s] = _store(y, dt)
                for k in stacked:
                    per_iteration[k].append(values[outputs_at[k][1]])
                nxt = [values[n] for _, _, n, _ in recurrences]  # every next value is read before any is replaced
                for (out, _, _, _), v in zip(recurrences, nxt):
                    values[out] = v
            return [values[src] if kind == LO.LAST_VALUE else
                    _stack(per_iteration[k], int(np.asarray(values[length])), axis, kind == LO.REVERSE, dtype, t)
                    for k, (kind, src, axis, length, dtype, t) in enumerate(outputs_at)]

        return self.name, "LOOP", run, inputs, [o[5] for o in outputs]


def _stack(items: list, length: int, axis: int, reverse: bool, dtype: np.dtype, t: Any) -> np.ndarray:
    """One value per iteration stacked along a new `axis` of size `length`: truncated, or padded with zeros."""
    if reverse:
        items = items[::-1]
    items = items[:length]
    if items:
        shape = items[0].shape
    else:  # no iteration: the element shape from TensorRT's output shape, without the new axis
        full = tuple(int(d) for d in t.shape)
        shape = full[:axis] + full[axis + 1:]
    y = np.zeros((length,) + tuple(shape), dtype)
    if items:
        y[:len(items)] = np.stack(items)
    return np.moveaxis(y, 0, axis)


def fold(layers: list) -> list:
    """`layers` (in topological order, back edges aside) with the layers of each loop replaced by one Loop, so
    ordered that every item still comes after the producers of what it reads."""
    loop_of: dict[int, int] = {}  # position -> loop number, for boundary layers
    seen: list[Any] = []  # the ILoops, kept alive so that the bindings hand back the same objects
    for k, layer in enumerate(layers):
        if layer_type(layer) in BOUNDARY:
            downcast(layer)
            loop = layer.loop
            number = next((q for q, other in enumerate(seen) if other is loop), len(seen))
            if number == len(seen):
                seen.append(loop)
            loop_of[k] = number
    if not loop_of:
        return layers
    consumers: dict[Any, list[int]] = {}
    for k, layer in enumerate(layers):
        for t in _reads(layer):
            if t is not None:
                consumers.setdefault(t, []).append(k)
    member = dict(loop_of)
    for k, number in loop_of.items():  # the body: what depends on a recurrence or iterator output, up to loop outputs
        if layer_type(layers[k]) not in (LT.RECURRENCE, LT.ITERATOR):
            continue
        stack = [layers[k].get_output(0)]
        while stack:
            for c in consumers.get(stack.pop(), ()):
                if member.get(c, number) != number:
                    raise UnsupportedLayerError(f"layer '{layers[c].name}' belongs to two loops (nested loops are "
                                                "not supported)")
                if c in member:
                    continue
                member[c] = number
                stack.extend(layers[c].get_output(j) for j in range(layers[c].num_outputs))
    loops = [Loop(lp.name, [layer for k, layer in enumerate(layers) if member.get(k) == q])
             for q, lp in enumerate(seen)]
    items: list[Any] = [layer for k, layer in enumerate(layers) if k not in member] + loops
    return _ordered(items)


def _ordered(items: list) -> list:
    """Items (layers and Loops) so that each comes after the producers of the tensors it reads."""
    def reads(item: Any) -> list:
        return item.inputs if isinstance(item, Loop) else _reads(item)

    def made(item: Any) -> list:
        layers = item.layers if isinstance(item, Loop) else [item]
        return [layer.get_output(j) for layer in layers for j in range(layer.num_outputs)]

    producer = {t: k for k, item in enumerate(items) for t in made(item)}

    def cycle(k: int) -> str:
        what = f"loop '{items[k].name}'" if isinstance(items[k], Loop) else f"layer '{items[k].name}'"
        return f"{what} is part of a cycle outside a loop's recurrences"

    order = depth_first(len(items), lambda k: [producer.get(t) if t is not None else None for t in reads(items[k])],
                        cycle)
    return [items[k] for k in order]
