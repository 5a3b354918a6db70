"""Isolated worker processes: the pool that watches them, the worker main loop, its frame protocol, the work folder."""
