"""Parallax fuzzer."""
