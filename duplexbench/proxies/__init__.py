"""Intermediaries in the measured path (nginx)."""
