"""Hostile and malformed census files, built on demand (nothing large is committed)."""
