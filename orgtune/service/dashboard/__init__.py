"""The service's web dashboard: static pages (no build step) that call the JSON API with the user's key."""
