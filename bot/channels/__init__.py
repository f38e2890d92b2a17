"""Messaging channels that put the agent in front of graduates (Telegram)."""
