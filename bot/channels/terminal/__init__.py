"""The terminal as a channel: ``gradguide chat`` on the same database and handoff service as
Telegram and the console."""
