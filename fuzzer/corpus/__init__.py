"""Corpus entries: a reduced case as a folder that reproduces its bug with only the libraries under test."""
