"""Tickets and ownership: bot → queued → assigned (a counsellor) → back to bot on resolve."""
