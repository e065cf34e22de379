"""The problemgen service."""
