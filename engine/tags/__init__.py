"""Tags: vocabularies of labels, zero-shot scores from stored vectors, thresholds, the user's
answers and what they teach, tags in the database, and browsing photos by tag."""
