"""One case: running it through its pipelines, follow-up looks, the noise check, the gap book, case files on disk."""
