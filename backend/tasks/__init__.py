"""The one domain: a user's tasks."""
