"""The clusterer service."""
