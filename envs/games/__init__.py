"""Games: multi-turn environments that need no tools."""
