"""Keeping the index in step with the library's folders: scanning by stat, the indexing
pipeline (hash, decode, embed, commit in batches) and the folder watcher."""
