"""MPNet's top layers tuned inside each training fold, the frozen rest run once, for `issue18_round2.py
tuned_text`.

    PYTHONPATH=src python benchmarks/tuned_top_layers.py tuned.npz [--layers 2] [--epochs 3]

Tuning a whole backbone per fold is what `--quality` does for MiniLM (~2.5 min a fold here); MPNet
is ~8 times MiniLM's work per text and was never tuned. With its lower layers frozen their output
does not depend on the fold, so it is computed once for every text (length-sorted batches of 64,
64 tokens, as the main job tokenises), and each fold trains only the top `--layers` transformer
layers and a linear classifier on the masked mean of their output, on that fold's training pairs
(AdamW, warm-up then cosine, as `mmsent finetune` tunes a text backbone). The tuned layers then
give every text's pooled vector: array `fold<k>` (rows in `load_table`'s order) is what fold k's
concat reads in place of the stored MPNet vectors. Folds: the main job's (5, fold seed 0).
"""

from __future__ import annotations

import copy
import time

from common import fold_optimizer, lab_folds, top_tuning_parser


def main() -> None:
    args = top_tuning_parser(__doc__, "layers", 2, "transformer layers", lr=4e-5).parse_args()

    import numpy as np
    import torch
    from transformers.masking_utils import create_bidirectional_mask

    from mmsent import LABELS
    from mmsent.encoders.registry import create_encoder
    from mmsent.encoders.text import masked_mean

    cfg, table, labels, folds = lab_folds(args)
    texts = [pair.text for pair in table.pairs]

    started = time.perf_counter()
    encoder = create_encoder("mpnet")
    model = encoder.model.eval()
    frozen_depth = len(model.encoder.layer) - args.layers
    order = np.argsort([len(text) for text in texts])
    cached = []  # (rows, hidden states after the frozen layers, attention mask)
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            rows = order[start : start + 64]
            batch = encoder.collate([encoder.preprocess(texts[i]) for i in rows])
            states = model(**batch, output_hidden_states=True).hidden_states[frozen_depth]
            cached.append((torch.as_tensor(rows), states.clone(), batch["attention_mask"]))
    seconds = time.perf_counter() - started
    print(f"embeddings and the lowest {frozen_depth} layers, {len(texts)} texts: {seconds:.1f} s")

    def top(layers, states, mask):
        attention = create_bidirectional_mask(config=model.config, inputs_embeds=states, attention_mask=mask)
        bias = model.encoder.compute_position_bias(states)
        for layer in layers:
            states = layer(states, attention, bias)[0]
        return masked_mean(states, mask)

    def every_text(layers) -> np.ndarray:  # rows in the table's order
        pooled = np.empty((len(texts), model.config.hidden_size), np.float32)
        with torch.inference_mode():
            for rows, states, mask in cached:
                pooled[rows.numpy()] = top(layers, states, mask).numpy()
        return pooled

    untuned = every_text(model.encoder.layer[frozen_depth:])  # the cache is right if these are the stored
    stored = table.text_store.pooled[table.text_rows, -model.config.hidden_size :]
    print(
        f"untuned top layers against the stored MPNet vectors: max |diff| {abs(untuned - stored).max():.1e}"
    )

    arrays = {}
    for k, (train_rows, _) in enumerate(folds):
        started = time.perf_counter()
        torch.manual_seed(args.seed + k)
        layers = copy.deepcopy(model.encoder.layer[frozen_depth:]).train()
        classifier = torch.nn.Linear(model.config.hidden_size, len(LABELS))
        dropout = torch.nn.Dropout(0.1)
        in_fold = torch.zeros(len(texts), dtype=torch.bool)
        in_fold[torch.as_tensor(train_rows)] = True
        steps = []  # minibatches of <= 32 training rows of one cached batch (similar lengths)
        for rows, states, mask in cached:
            keep = in_fold[rows].nonzero().squeeze(1)
            steps += [(rows[part], states[part], mask[part]) for part in keep.split(32)]
        optimizer, scheduler = fold_optimizer(args, layers, classifier, args.epochs * len(steps))
        generator = torch.Generator().manual_seed(args.seed + k)
        for _ in range(args.epochs):
            for i in torch.randperm(len(steps), generator=generator).tolist():
                rows, states, mask = steps[i]
                logits = classifier(dropout(top(layers, states, mask)))
                loss = torch.nn.functional.cross_entropy(logits, labels[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
        arrays[f"fold{k}"] = every_text(layers.eval())
        seconds = time.perf_counter() - started
        print(f"fold {k}: {len(train_rows)} training pairs, {seconds:.1f} s", flush=True)
    np.savez(args.out, **arrays)


if __name__ == "__main__":
    main()
