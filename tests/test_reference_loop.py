"""The reference interpreter's loops (ILoop: trip limit, recurrence, iterator, loop output layers) against NumPy loops
written here, on real TensorRT networks; output shapes and dtypes are those TensorRT infers."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mx2trt._trt import trt
from mx2trt.errors import Mx2TrtError
from mx2trt.reference import ReferenceProgram, UnsupportedLayerError, supported_layer_kinds
from test_reference import Net

E = trt.ElementWiseOperation
LO = trt.LoopOutput


def count(net: Net, n: int):
    return net.const(np.array(n, np.int32))


def run_outputs(net: Net, outs, feeds) -> list[np.ndarray]:
    """Interpret with `outs` marked, checking each against TensorRT's inferred shape and dtype."""
    prog = net.program(*outs)
    got = prog.run(feeds)
    res = []
    for t in outs:
        y = got[t.name]
        assert y.shape == tuple(t.shape), f"interpreter shape {y.shape}, TensorRT {tuple(t.shape)}"
        assert y.dtype == np.dtype({trt.float32: np.float32, trt.float16: np.float16, trt.int32: np.int32}[t.dtype])
        res.append(y)
    return res


@given(st.data())
def test_scan_recurrence_iterator_and_every_output_kind(data):
    """h' = h * a + x_i over an iterator (forward or reverse, any axis): LAST_VALUE of h, CONCATENATE of the body's
    h' and REVERSE of h itself (the value at the start of each iteration) along a drawn axis, of a drawn length."""
    t, b, c = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    it_axis, reverse = data.draw(st.sampled_from([0, 1])), data.draw(st.booleans())
    trips = data.draw(st.integers(0, t))
    length = data.draw(st.integers(0, 6))
    out_axis = data.draw(st.integers(0, 2))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    xs = rng.standard_normal((t, b, c) if it_axis == 0 else (b, t, c)).astype(np.float32)
    h0 = rng.standard_normal((b, c)).astype(np.float32)
    a = rng.uniform(0.5, 1.5, (1, c)).astype(np.float32)

    net = Net()
    x_in, h_in = net.input("x", xs.shape), net.input("h0", h0.shape)
    loop = net.net.add_loop()
    loop.add_trip_limit(count(net, trips), trt.TripLimit.COUNT)
    rec = loop.add_recurrence(h_in)
    x_i = loop.add_iterator(x_in, it_axis, reverse).get_output(0)
    h = rec.get_output(0)
    h_next = net.net.add_elementwise(net.net.add_elementwise(h, net.const(a), E.PROD).get_output(0), x_i, E.SUM)
    rec.set_input(1, h_next.get_output(0))
    last = loop.add_loop_output(h, LO.LAST_VALUE)
    cat = loop.add_loop_output(h_next.get_output(0), LO.CONCATENATE, out_axis)
    rev = loop.add_loop_output(h, LO.REVERSE, out_axis)
    for layer in (cat, rev):
        layer.set_input(1, count(net, length))
    got = run_outputs(net, [last.get_output(0), cat.get_output(0), rev.get_output(0)], {"x": xs, "h0": h0})

    steps = [np.take(xs, t - 1 - i if reverse else i, axis=it_axis) for i in range(trips)]
    hs, h_now = [], h0.copy()
    for x in steps:
        hs.append(h_now)
        h_now = (h_now * a + x).astype(np.float32)
    after = hs[1:] + [h_now] if trips else []  # the body's h' of each iteration

    def stacked(items):
        y = np.zeros((length, b, c), np.float32)
        for i, v in enumerate(items[:length]):
            y[i] = v
        return np.moveaxis(y, 0, out_axis)

    np.testing.assert_array_equal(got[0], h_now)
    np.testing.assert_array_equal(got[1], stacked(after))
    np.testing.assert_array_equal(got[2], stacked(hs[::-1]))


def test_recurrences_update_together():
    """(a, b) -> (b, a + b): each next value is read before any recurrence takes its new value (Fibonacci)."""
    net = Net()
    loop = net.net.add_loop()
    loop.add_trip_limit(count(net, 10), trt.TripLimit.COUNT)
    ra = loop.add_recurrence(net.const(np.array([0.0], np.float32)))
    rb = loop.add_recurrence(net.const(np.array([1.0], np.float32)))
    ra.set_input(1, rb.get_output(0))
    rb.set_input(1, net.net.add_elementwise(ra.get_output(0), rb.get_output(0), E.SUM).get_output(0))
    a, b = run_outputs(net, [loop.add_loop_output(r.get_output(0), LO.LAST_VALUE).get_output(0) for r in (ra, rb)], {})
    fa, fb = 0, 1
    for _ in range(10):
        fa, fb = fb, fa + fb
    assert (a[0], b[0]) == (fa, fb) == (55, 89)


def test_fp16_recurrence_rounds_every_iteration():
    """A float16 accumulator rounds after every iteration's sum, as a float16 loop in NumPy does."""
    steps = np.random.default_rng(3).uniform(0, 1, (64, 3)).astype(np.float16)
    net = Net()
    loop = net.net.add_loop()
    loop.add_trip_limit(count(net, 64), trt.TripLimit.COUNT)
    rec = loop.add_recurrence(net.const(np.full(3, 1000.0, np.float16)))
    x = loop.add_iterator(net.const(steps)).get_output(0)
    rec.set_input(1, net.net.add_elementwise(rec.get_output(0), x, E.SUM).get_output(0))
    (got,) = run_outputs(net, [loop.add_loop_output(rec.get_output(0), LO.LAST_VALUE).get_output(0)], {})
    want = np.full(3, 1000.0, np.float16)
    for s in steps:
        want = (want + s).astype(np.float16)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, (1000.0 + steps.astype(np.float64).sum(0)).astype(np.float16))


def test_loop_invariants_and_consumers_of_loop_outputs_order_around_the_loop():
    """The body reads a tensor computed outside the loop by a layer added after the loop's layers (it runs once,
    first), and a layer after the loop reads its output."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    net = Net()
    x_in = net.input("x", x.shape)
    loop = net.net.add_loop()
    loop.add_trip_limit(count(net, 3), trt.TripLimit.COUNT)
    rec = loop.add_recurrence(x_in)
    add = net.net.add_elementwise(rec.get_output(0), x_in, E.SUM)  # second input replaced below
    rec.set_input(1, add.get_output(0))
    out = loop.add_loop_output(rec.get_output(0), LO.LAST_VALUE).get_output(0)
    invariant = net.net.add_elementwise(x_in, x_in, E.PROD).get_output(0)  # x * x, created after the loop
    add.set_input(1, invariant)
    after = net.net.add_elementwise(out, net.const(np.float32(-1).reshape(1, 1)), E.PROD).get_output(0)
    (got,) = run_outputs(net, [after], {"x": x})
    np.testing.assert_array_equal(got, -(x + 3 * x * x))


def test_two_loops_of_one_name_one_feeding_the_other():
    """Loops are told apart by their ILoop, not their name: the first doubles x 3 times, the second (same name,
    layers created first in the network) adds 1 to that 2 times."""
    x = np.array([1.0, -2.0], np.float32)
    net = Net()
    x_in = net.input("x", x.shape)
    second, first = net.net.add_loop(), net.net.add_loop()
    second.name = first.name = "loop"
    second.add_trip_limit(count(net, 2), trt.TripLimit.COUNT)
    first.add_trip_limit(count(net, 3), trt.TripLimit.COUNT)
    r1 = first.add_recurrence(x_in)
    r1.set_input(1, net.net.add_elementwise(r1.get_output(0), r1.get_output(0), E.SUM).get_output(0))
    doubled = first.add_loop_output(r1.get_output(0), LO.LAST_VALUE).get_output(0)
    r2 = second.add_recurrence(doubled)
    r2.set_input(1, net.net.add_elementwise(r2.get_output(0), net.const(np.ones(2, np.float32)), E.SUM).get_output(0))
    (got,) = run_outputs(net, [second.add_loop_output(r2.get_output(0), LO.LAST_VALUE).get_output(0)], {"x": x})
    np.testing.assert_array_equal(got, x * 8 + 2)


def test_while_trip_limits_are_refused():
    net = Net()
    loop = net.net.add_loop()
    rec = loop.add_recurrence(net.const(np.array([1.0], np.float32)))
    rec.set_input(1, net.net.add_elementwise(rec.get_output(0), rec.get_output(0), E.SUM).get_output(0))
    cond = net.net.add_elementwise(rec.get_output(0), net.const(np.array([100.0], np.float32)), E.LESS).get_output(0)
    loop.add_trip_limit(_scalar(net, cond), trt.TripLimit.WHILE)
    out = loop.add_loop_output(rec.get_output(0), LO.LAST_VALUE).get_output(0)
    net.net.mark_output(out)
    with pytest.raises(UnsupportedLayerError, match="WHILE trip limits"):
        ReferenceProgram.from_network(net.net)


def _scalar(net: Net, t):
    s = net.net.add_shuffle(t)
    s.reshape_dims = ()
    return s.get_output(0)


def test_more_iterations_than_the_iterated_axis_fail():
    net = Net()
    loop = net.net.add_loop()
    loop.add_trip_limit(count(net, 4), trt.TripLimit.COUNT)
    rec = loop.add_recurrence(net.const(np.zeros(2, np.float32)))
    x = loop.add_iterator(net.input("x", (3, 2))).get_output(0)
    rec.set_input(1, net.net.add_elementwise(rec.get_output(0), x, E.SUM).get_output(0))
    prog = net.program(loop.add_loop_output(rec.get_output(0), LO.LAST_VALUE).get_output(0))
    with pytest.raises(Mx2TrtError, match="4 iterations over an axis of 3"):
        prog.run({"x": np.zeros((3, 2), np.float32)})


def test_loop_layer_kinds_are_listed():
    assert {"TRIP_LIMIT", "RECURRENCE", "ITERATOR", "LOOP_OUTPUT"} <= set(supported_layer_kinds())
