"""Configuration, errors and ASGI plumbing shared by every router."""
