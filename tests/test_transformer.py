"""A BERT-base-shaped encoder layer written with mx.sym converts completely and matches MXNet, fp32 and fp16."""
from __future__ import annotations

import pytest

from mx2trt import zoo

from .harness import check_graph


@pytest.mark.slow
@pytest.mark.parametrize("precision, rtol", [("fp32", 1e-5), ("fp16", 1e-2)])
def test_bert_encoder_layer_converts_completely(precision, rtol):
    sym, params, shapes = zoo.bert_encoder(batch=2, seq=16, layers=1)
    feeds = zoo.bert_inputs(shapes)
    c = check_graph(sym, feeds, {k: v.asnumpy() for k, v in params.items()}, engines=1, rtol=rtol,
                    precision=precision)
    rep = c.report
    assert rep.nodes_trt == rep.nodes_total, rep.op_table()
    assert not c.params, f"weights left outside the engine: {sorted(c.params)[:5]}"
