"""URL prefixes of the JSON APIs (errors there are JSON, not pages)."""

API_PATH_PREFIXES = ("/event/", "/auth/", "/opsauditlogs", "/api/")
