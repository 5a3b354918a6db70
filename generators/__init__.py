"""Parallax generators: the graph IR, operator specs, z3 generation, value search and emitters."""
