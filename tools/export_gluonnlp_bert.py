#!/usr/bin/env python3
"""Regenerate tests/data/gluonnlp_bert_2layers-symbol.json: GluonNLP 0.10's BERT (BERT-base widths, 2 layers, vocab
1000, pooler) hybridized and exported offline, so the tests exercise its real symbol without needing gluonnlp.

    pip install 'gluonnlp==0.10.0'   # builds from source; needs numpy<2 like MXNet
    python tools/export_gluonnlp_bert.py
"""
from __future__ import annotations

import pathlib
import tempfile

from mx2trt._mx import mx

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data" / "gluonnlp_bert_2layers-symbol.json"


def main() -> None:
    from gluonnlp.model import bert

    encoder = bert.BERTEncoder(num_layers=2, units=768, hidden_size=3072, max_length=512, num_heads=12,
                               dropout=0.1, output_attention=False, output_all_encodings=False)
    net = bert.BERTModel(encoder, vocab_size=1000, token_type_vocab_size=2, units=768, embed_size=768,
                         use_pooler=True, use_decoder=False, use_classifier=False, prefix="bert_")
    net.initialize(mx.init.Normal(0.02))
    net.hybridize()
    net(mx.nd.zeros((2, 16)), mx.nd.zeros((2, 16)), mx.nd.array([16, 10]))
    with tempfile.TemporaryDirectory() as tmp:
        net.export(f"{tmp}/bert")
        OUT.write_text(pathlib.Path(f"{tmp}/bert-symbol.json").read_text())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
