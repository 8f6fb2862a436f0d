"""Suggestions for a misspelt or foreign word: "did you mean 'conv'?", "specc calls it 'fc'"."""

from __future__ import annotations

import difflib

from .layers import KINDS

# What users of other frameworks write, and what specc calls it.
SYNONYMS = {
    **{alias: meant for kind in KINDS.values() for alias, meant in kind.aliases.items()},
    "add": "residual",
    "cat": "concat",
    "sequential": "seq",
    "glorot": "xavier",
    "he": "kaiming",
    "msra": "kaiming",
    "model": "network",
    "net": "network",
    # argument names
    "stride": "S",
    "strides": "S",
    "padding": "P",
    "pad": "P",
    "kernel": "F",
    "kernel_size": "F",
    "filter": "F",
    "size": "F",
    "filters": "K",
    "out_channels": "K",
    "channels": "K",
    "units": "K",
    "out_features": "K",
    "rate": "p",
    "dilation_rate": "dilation",
    "use_bias": "bias",
    # train settings
    "learning_rate": "lr",
    "wd": "weight_decay",
    "scheduler": "schedule",
    "lr_scheduler": "schedule",
}


def did_you_mean(word: str, candidates) -> str | None:
    """A hint naming the candidate the user most likely meant, or None."""
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    if word.lower() in lowered:
        return f"did you mean '{lowered[word.lower()]}'?"
    synonym = SYNONYMS.get(word.lower())
    if synonym and synonym.split()[0] in candidates:
        return f"specc calls it '{synonym}'"
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
