"""Liaison Hotline: the 24-hour hotline of a deputies' liaison point."""

__version__ = "0.1.0"
