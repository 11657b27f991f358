"""Wrappers: transformations that run another transformation, possibly on a clock of its own."""
