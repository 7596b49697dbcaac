"""Persistence: the relational database (metadata) and the blob store (pixels, masks, files)."""
