"""The testsynth service."""
