"""The words, events and pure rules every other part shares (standard library only)."""
