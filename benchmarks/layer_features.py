"""Every layer's pooled vector of the default text encoders, for `issue18_round2.py text_layers`.

    PYTHONPATH=src python benchmarks/layer_features.py layers.npz

For MiniLM (6 layers) and MPNet (12) as the main job builds them (64 tokens, the same
tokenizers), the masked mean of each layer's hidden states, the embeddings' output included:
arrays `minilm_0` .. `minilm_6` and `mpnet_0` .. `mpnet_12`, rows in `load_table`'s order. The
last layer's are the stored vectors (PyTorch here, ONNX Runtime in the store: equal to ~1e-6).
The main job pools the last layer only; sentence-transformers trained that layer for similarity,
and sentiment may sit lower.
"""

from __future__ import annotations

import time

from common import lab_table, store_parser


def main() -> None:
    args = store_parser(__doc__).parse_args()

    import numpy as np
    import torch

    from mmsent.encoders.registry import create_encoder
    from mmsent.encoders.text import masked_mean

    _, table = lab_table(args)
    texts = [pair.text for pair in table.pairs]
    order = np.argsort([len(text) for text in texts])  # similar lengths together: less padding
    arrays = {}
    for name in ("minilm", "mpnet"):
        started = time.perf_counter()
        encoder = create_encoder(name)
        batches = []  # per batch, in length order: (layers, texts, dim)
        with torch.inference_mode():
            for start in range(0, len(texts), 64):
                batch = encoder.collate([encoder.preprocess(texts[i]) for i in order[start : start + 64]])
                states = encoder.model(**batch, output_hidden_states=True).hidden_states
                batches.append(np.stack([masked_mean(h, batch["attention_mask"]).numpy() for h in states]))
        in_length_order = np.concatenate(batches, axis=1)
        pooled = np.empty_like(in_length_order, dtype=np.float32)
        pooled[:, order] = in_length_order  # back to the table's order
        arrays.update({f"{name}_{layer}": vectors for layer, vectors in enumerate(pooled)})
        print(f"{name}: {len(pooled)} layers of {len(texts)} texts in {time.perf_counter() - started:.1f} s")
    np.savez(args.out, **arrays)


if __name__ == "__main__":
    main()
