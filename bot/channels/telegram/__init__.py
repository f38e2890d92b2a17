"""The Telegram channel: graduates in private chats, counsellors in a forum group, admins."""
