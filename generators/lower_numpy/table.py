"""The numpy lowering table (filled by the group modules of this package)."""

from generators.lowering import LoweringTable

LOWER = LoweringTable("numpy")
lowers = LOWER.register
