"""TEST SUPPORT ONLY: helpers shared by tests/ and bench/ (not installed)."""
