"""`vcamswap bench`: metrics, passes, report."""
