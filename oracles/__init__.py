"""Parallax oracles."""
