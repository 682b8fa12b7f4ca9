"""What the engine keeps on disk: the library database (SQLite, the source of truth), the ANN
index cached beside it, thumbnails, the one-writer lock on the data folder, atomic file writes."""
