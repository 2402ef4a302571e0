"""web/toolkit."""
