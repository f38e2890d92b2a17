"""Words for the values the console shows: waiting times, who did something (a trail's
actor), handoff reasons, trail events, audit actions, language codes, intents. Everything is
looked up in prompts/web.yaml in the page's language; a value without a label is shown in a
localized sentence (events, reasons, audit actions) or as stored (a data value)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from bot.handoff.models import PLAIN_ACTORS

Translate = Callable[..., str]


@dataclass(frozen=True)
class Labels:
    t: Translate
    keys: Collection[str]

    def known(self, key: str) -> bool:
        return key in self.keys

    def value(self, prefix: str, value: object) -> str:
        """``t(prefix + value)``, else the value as stored (a data value, e.g. a topic)."""
        text = "" if value is None else str(value)
        return self.t(prefix + text) if self.known(prefix + text) else text

    def event(self, kind: str) -> str:
        key = f"web_event_{kind}"
        return self.t(key) if self.known(key) else self.t("web_event_other", kind=kind)

    def reason(self, reason: str | None) -> str:
        if not reason:
            return "—"
        key = f"web_reason_{reason}"
        return self.t(key) if self.known(key) else self.t("web_reason_other", reason=reason)

    def action(self, action: str) -> str:
        key = f"web_audit_{action}"
        return self.t(key) if self.known(key) else self.t("web_audit_other", action=action)

    def details(self, data: Mapping[str, object] | None) -> list[tuple[str, str]]:
        """An audit entry's data as readable pairs: each key's label (``web_detail_<key>``,
        else the key in words) and its value as text — never JSON with escapes."""
        pairs = []
        for key, value in (data or {}).items():
            label_key = f"web_detail_{key}"
            label = self.t(label_key) if self.known(label_key) else key.replace("_", " ")
            pairs.append((label, self._plain(value)))
        return pairs

    def _plain(self, value: object) -> str:
        if value is None:
            return "—"
        if isinstance(value, bool):
            return self.t("web_yes" if value else "web_no")
        if isinstance(value, Mapping):
            return "; ".join(f"{k}: {self._plain(v)}" for k, v in value.items())
        if isinstance(value, list | tuple):
            return ", ".join(self._plain(v) for v in value)
        return str(value)

    def lang(self, code: str | None) -> str:
        if code in ("zh", "en"):
            return self.t(f"web_lang_{code}")
        return self.t("web_lang_unknown") if not code or code == "?" else code

    def wait(self, delta: dt.timedelta) -> str:
        minutes = max(0, int(delta.total_seconds() // 60))
        if minutes < 60:
            return self.t("web_wait_minutes", minutes=minutes)
        hours, minutes = divmod(minutes, 60)
        if hours < 48:
            return self.t("web_wait_hours", hours=hours, minutes=f"{minutes:02d}")
        return self.t("web_wait_days", days=hours // 24, hours=hours % 24)

    def actor(self, actor: str | None, names: Mapping[str, str] | None = None) -> str:
        """A trail's or the audit log's actor as a person: a counsellor's name, or the
        graduate, the bot, the system, the command line."""
        if not actor:
            return "—"
        if names and actor in names:
            return names[actor]
        if actor in PLAIN_ACTORS:
            return self.t(f"web_actor_{actor}")
        kind, _, rest = actor.partition(":")
        if kind == "counsellor" and rest.lstrip("-").isdigit():
            return self.t("web_actor_counsellor_id", id=rest)
        if kind in ("web", "counsellor", "admin") and rest:
            return rest  # an account's user name
        return actor
