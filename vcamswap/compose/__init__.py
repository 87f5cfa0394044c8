"""Compose: alignment into the engine's crop, colour match, masks, paste-back: the one home of compositing policy."""
