"""Reading the lab folder: lists, texts, images, pairs, splits and the audit."""

from mmsent.data.audit import audit, render_audit
from mmsent.data.images import image_digest, image_size, open_image
from mmsent.data.pairs import (
    ListRow,
    LoadResult,
    Pair,
    Skipped,
    check_row,
    fingerprint,
    load_pairs,
    read_list,
)
from mmsent.data.split import duplicate_groups, group_ids, kfold, split_pairs, train_val_split
from mmsent.data.texts import clean_text, decode_text, is_blank

__all__ = [
    "ListRow",
    "LoadResult",
    "Pair",
    "Skipped",
    "audit",
    "check_row",
    "clean_text",
    "decode_text",
    "duplicate_groups",
    "fingerprint",
    "group_ids",
    "image_digest",
    "image_size",
    "is_blank",
    "kfold",
    "load_pairs",
    "open_image",
    "read_list",
    "render_audit",
    "split_pairs",
    "train_val_split",
]
