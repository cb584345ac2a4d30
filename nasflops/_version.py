"""The package version, alone in the lowest layer so that any module may read it."""
__version__ = "0.2.0"
