"""Reports read results (summary dicts), never the engine: tables, files and plots."""
