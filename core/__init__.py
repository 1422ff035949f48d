"""Ground floor: what every app shares (settings reading, API helpers, text and
address rules, secret scrubbing, worker heartbeats and long-poll slots).

Imports nothing of the project above it."""
