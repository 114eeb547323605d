"""Predator Analytics domain core: plain Python, importable and testable without Ray."""
