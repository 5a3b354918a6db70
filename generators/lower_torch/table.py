"""The torch lowering table (filled by the group modules of this package)."""

from generators.lowering import LoweringTable

LOWER = LoweringTable("torch")
lowers = LOWER.register
