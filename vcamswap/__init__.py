"""vcamswap: live face swap into a virtual camera named Swap Cam."""

__version__ = "0.1.0"
