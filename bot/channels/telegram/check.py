"""The Bot API half of ``gradguide check`` (the other half is ``bot.check``), also run by
``gradguide serve`` before it starts: the token, the counsellor group (it exists, is a forum
supergroup, the bot administers it with the right to manage topics), the counsellors and
admins in it, and the webhook settings.

Telegram's errors are read as Bot API results: ``InvalidToken`` is a rejected token,
``BadRequest`` "chat not found" a wrong id or a group the bot was never added to,
``Forbidden`` a group the bot was removed from; ``NetworkError`` (``TimedOut`` among them)
an unreachable API, after which nothing else is asked.
"""

from __future__ import annotations

from telegram import Bot, ChatMemberAdministrator
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError

from bot.check import Finding, Status
from bot.settings import Settings

REJECTED_TOKEN = "Telegram rejected the bot token; check TELEGRAM_BOT_TOKEN (from @BotFather)"
IN_GROUP = frozenset(
    {ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.MEMBER}
)
COUNSELLOR_AREA = "counsellor group"
STOPPING_AREAS = frozenset({"bot", COUNSELLOR_AREA, "webhook"})
"""Errors here make ``serve`` refuse to start: nothing would arrive, or a ticket could not
reach anyone. (A counsellor missing from the group is logged: the others still see it.)"""


def bot_for(settings: Settings) -> Bot:
    assert settings.telegram_bot_token is not None
    api = settings.telegram_api_url.rstrip("/")
    return Bot(settings.telegram_bot_token, base_url=f"{api}/bot", base_file_url=f"{api}/file/bot")


async def check_telegram(settings: Settings) -> list[Finding]:
    if not settings.telegram_bot_token:
        return [
            Finding(
                "bot",
                Status.ERROR,
                "TELEGRAM_BOT_TOKEN is not set",
                "create a bot with @BotFather and export its token as TELEGRAM_BOT_TOKEN",
            )
        ]
    found = check_webhook(settings)
    try:
        async with bot_for(settings) as bot:
            me = await bot.get_me()
            found.insert(0, Finding("bot", Status.OK, f"@{me.username} (id {me.id})"))
            found[1:1] = await _check_group(bot, settings)
    except InvalidToken:
        found.insert(0, Finding("bot", Status.ERROR, REJECTED_TOKEN, "copy the token again"))
    except NetworkError as exc:  # after BadRequest/Forbidden, handled where they are asked
        api = settings.telegram_api_url
        found.insert(
            0,
            Finding(
                "bot",
                Status.ERROR,
                f"cannot reach the Telegram Bot API at {api}: {exc}",
                "check the network, a proxy, or GRADGUIDE_TELEGRAM_API_URL",
            ),
        )
    return found


async def _check_group(bot: Bot, settings: Settings) -> list[Finding]:
    chat_id = settings.counsellor_chat_id
    if chat_id is None:
        return [
            Finding(
                COUNSELLOR_AREA,
                Status.WARN,
                "not set: tickets are queued, but no counsellor is told in Telegram",
                "create a group, turn on Topics, add the bot as an administrator, send /ids "
                "there and set GRADGUIDE_COUNSELLOR_CHAT_ID to the -100… id it shows",
            )
        ]
    try:
        chat = await bot.get_chat(chat_id)
    except (BadRequest, Forbidden) as exc:
        return [
            Finding(
                COUNSELLOR_AREA,
                Status.ERROR,
                f"chat {chat_id}: {exc.message}",
                "add the bot to the group, then send /ids there for its id",
            )
        ]
    if chat.type != ChatType.SUPERGROUP or not chat.is_forum:
        return [
            Finding(
                COUNSELLOR_AREA,
                Status.ERROR,
                f"“{chat.title}” is not a forum: each graduate's ticket needs its own topic",
                "turn on Topics in the group's settings (the group becomes a supergroup: "
                "send /ids there again for its new -100… id)",
            )
        ]
    found = [Finding(COUNSELLOR_AREA, Status.OK, f"“{chat.title}” ({chat_id}), a forum")]
    member = await bot.get_chat_member(chat_id, bot.id)
    if not isinstance(member, ChatMemberAdministrator) and member.status != "creator":
        found.append(
            Finding(
                COUNSELLOR_AREA,
                Status.ERROR,
                f"the bot is {member.status} there, not an administrator",
                "make the bot an administrator with the right to manage topics",
            )
        )
    elif isinstance(member, ChatMemberAdministrator) and not member.can_manage_topics:
        found.append(
            Finding(
                COUNSELLOR_AREA,
                Status.ERROR,
                "the bot is an administrator without the right to manage topics",
                "edit the bot's administrator rights: turn on “Manage topics”",
            )
        )
    else:
        found.append(Finding(COUNSELLOR_AREA, Status.OK, "the bot can manage topics"))
    for role, ids in (("counsellor", settings.counsellor_ids), ("admin", settings.admin_ids)):
        for user_id in ids:
            found.append(await _check_member(bot, chat_id, user_id, role))
    return found


async def _check_member(bot: Bot, chat_id: int, user_id: int, role: str) -> Finding:
    try:
        member = await bot.get_chat_member(chat_id, user_id)
        status = str(member.status)
        name = member.user.full_name
    except BadRequest as exc:
        status, name = exc.message, str(user_id)
    if status in IN_GROUP:
        return Finding("members", Status.OK, f"{role} {name} ({user_id}) is in the group")
    return Finding(
        "members",
        Status.ERROR,
        f"{role} {user_id} is not in the counsellor group ({status})",
        "add them to the group: they see tickets there",
    )


def check_webhook(settings: Settings) -> list[Finding]:
    if not settings.webhook_url:
        return [Finding("webhook", Status.OK, "not set: long polling")]
    if not settings.webhook_url.startswith("https://"):
        # Telegram's own servers only call HTTPS webhooks; a self-hosted Bot API server
        # (--local) may call plain HTTP on its own network
        official = "api.telegram.org" in settings.telegram_api_url
        return [
            Finding(
                "webhook",
                Status.ERROR if official else Status.WARN,
                f"{settings.webhook_url} is not HTTPS: Telegram's servers only call HTTPS webhooks",
                "put a TLS proxy in front and set GRADGUIDE_WEBHOOK_URL=https://…",
            )
        ]
    if not settings.webhook_secret:
        return [
            Finding(
                "webhook",
                Status.WARN,
                f"{settings.webhook_url} without a secret: anyone may post updates to it",
                "set GRADGUIDE_WEBHOOK_SECRET to a long random string",
            )
        ]
    return [Finding("webhook", Status.OK, f"{settings.webhook_url}, with a secret token")]
