"""Tools around the product: bench and doctor."""
