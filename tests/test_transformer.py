"""A BERT-base-shaped encoder layer written with mx.sym converts completely and matches MXNet, fp32, fp16 and bf16.

Measured max relative errors: the encoder layer fp16 9.5e-4, bf16 7.7e-3; GluonNLP's BERT fp16 1.7e-3, bf16 1.2e-2."""
from __future__ import annotations

import pytest

from mx2trt import zoo

from harness import check_graph, check_profiles


PRECISIONS = [("fp32", 1e-5), ("fp16", 1e-2), ("bf16", 5e-2)]


@pytest.mark.slow
@pytest.mark.parametrize("precision, rtol", PRECISIONS)
def test_bert_encoder_layer_converts_completely(precision, rtol):
    sym, params, shapes = zoo.bert_encoder(batch=2, seq=16, layers=1)
    feeds = zoo.bert_inputs(shapes)
    c = check_graph(sym, feeds, {k: v.asnumpy() for k, v in params.items()}, engines=1, rtol=rtol,
                    precision=precision)
    rep = c.report
    assert rep.nodes_trt == rep.nodes_total, rep.op_table()
    assert not c.params, f"weights left outside the engine: {sorted(c.params)[:5]}"


@pytest.mark.slow
@pytest.mark.parametrize("precision, rtol", PRECISIONS)
def test_gluonnlp_bert_symbol_converts_completely(precision, rtol):
    """GluonNLP 0.10's real BERT symbol (2 layers, BERT-base widths; tests/data, see tools/export_gluonnlp_bert.py):
    after folding, every op node, the int32 valid-length path included, runs in one engine."""
    import numpy as np

    from mx2trt import zoo

    sym, params, shapes = zoo.gluonnlp_bert(batch=2, seq=16)
    rng = np.random.default_rng(1)
    data = {"data0": rng.integers(0, 1000, (2, 16)).astype(np.float32),
            "data1": rng.integers(0, 2, (2, 16)).astype(np.float32), "data2": np.array([16, 9], np.float32)}
    c = check_graph(sym, data, params, rtol=rtol, engines=1, precision=precision)
    rep = c.report
    assert len(rep.folded) == 20, rep.folded
    assert rep.nodes_trt == rep.nodes_total and rep.mac_coverage == 1.0, rep.op_table()


@pytest.mark.slow
@pytest.mark.parametrize("varying", ["batch", "sequence", "both"])
def test_gluonnlp_bert_with_a_dynamic_batch_or_sequence_length_is_one_engine(varying):
    """Batch 1..8, or sequence length 8..512 (MXNet's position embeddings hold 512), or both: one engine matching
    MXNet at min, opt and max of each, and between."""
    sym, params, _ = zoo.gluonnlp_bert()
    points = {"batch": [(1, 16), (4, 16), (8, 16)], "sequence": [(2, 8), (2, 128), (2, 512)],
              "both": [(1, 8), (2, 64), (4, 128)]}[varying]
    shapes = {"data0": points, "data1": points, "data2": [(b,) for b, _ in points]}
    between = {"batch": (3, 16), "sequence": (2, 37), "both": (3, 21)}[varying]

    def values(point):
        return zoo.gluonnlp_bert_inputs(point, seed=sum(point["data0"]))

    check_profiles(sym, params, shapes, values, rtol=1e-5,
                   also=[{"data0": between, "data1": between, "data2": between[:1]}])
