"""Independent protocol peers from npm, for integration tests."""
