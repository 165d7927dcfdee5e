"""Intake channels: the only code that knows a wire format."""
