"""Settings, AnnData key names and small shared types."""
