"""The tf lowering table (filled by the group modules of this package)."""

from generators.lowering import LoweringTable

LOWER = LoweringTable("tf")
lowers = LOWER.register
