"""`concat_text_pool`: concat plus a learned pool over the text tokens; only the text grid is read."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_config
from mmsent.errors import MmsentError
from mmsent.features.encode import load_table
from mmsent.heads import Features, create_head, head_token_modalities
from mmsent.train.fit import fit
from mmsent.train.recipe import recipe_for


def test_the_pool_weighs_real_tokens_only_and_tokens_may_be_narrower_than_the_pooled_text():
    torch.manual_seed(0)
    head = create_head("concat_text_pool", 10, 12, text_token_dim=4, dropout=0.0).eval()
    tokens = torch.randn(3, 5, 4)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[0, 2:] = False
    image, text = Features(torch.randn(3, 10)), Features(torch.randn(3, 12), tokens, mask)
    assert head(image, text).shape == (3, 3)
    readout = head.explain(image, text)
    weights = np.array(readout["text_token_weights"])
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    assert (weights[0, 2:] == 0).all() and (weights[0, :2] > 0).all()
    # padded positions cannot move the answer
    changed = Features(text.pooled, tokens.clone(), mask)
    changed.tokens[0, 3] = 1e3
    torch.testing.assert_close(head(image, changed)[0], head(image, text)[0])
    with pytest.raises(MmsentError, match="token size 4"):
        head(image, Features(text.pooled, torch.randn(3, 5, 12), mask))


def test_it_reads_the_text_grid_alone_and_trains_from_the_store(tmp_path, tiny_lab, tiny_encoders):
    assert head_token_modalities("concat_text_pool") == ("text",)
    cfg = tiny_config(tiny_lab, tiny_encoders, tmp_path, max_epochs=2, patience=0)
    table = load_table(cfg, progress=False)
    recipe = recipe_for("concat_text_pool", cfg.train)
    image, text = table.features(np.arange(4), recipe.needs_tokens)
    assert image.tokens is None and text.tokens is not None and text.mask.shape == text.tokens.shape[:2]
    rows = np.arange(len(table))
    fitted = fit(recipe, table, rows[:-8], rows[-8:], seed=0)
    probs = fitted.predict_proba(table, rows[-8:])
    assert probs.shape == (8, 3) and np.allclose(probs.sum(axis=1), 1.0)
    assert fitted.model.head.token_dim == table.text_store.tokens.shape[2]
