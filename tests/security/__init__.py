"""Hostile model files and hostile options: n3ml refuses them, runs nothing from them, and loses no data."""
