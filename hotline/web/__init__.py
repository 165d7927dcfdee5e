"""Representative console and public pages."""
