"""Rules that are not about safety: greetings, noise, rights violations happening now,
questions whose answer depends on the graduate's region, programme names, and instructions
planted in documents.

Crises, requests for a person, illegal and out-of-scope requests and prompt injection in a
graduate's message are the message check's (``bot.agent.guard``, a fitted model).
"""

from __future__ import annotations

import re

from bot.kb.regions import find_region


def _any(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


INJECTION = _any(  # in documents; a graduate's message is read by bot.agent.guard
    r"忽略.{0,8}(?:指令|指示|提示|规则|设定|要求)",
    r"无视.{0,8}(?:指令|指示|提示|规则|设定)",
    r"(?:系统|system)\s*(?:提示|prompt)",
    r"提示词",
    r"你现在是(?!.{0,6}(?:就业|毕业))",
    r"(?:扮演|假装你是)",
    r"开发者模式",
    r"越狱",
    r"\bignore (?:all |any )?(?:of )?(?:the |your )?(?:previous|prior|above|earlier)\b",
    r"\bdisregard (?:all |any )?(?:the |your )?(?:previous|prior|above)\b",
    r"\byou are now\b",
    r"\bpretend (?:to be|you are)\b",
    r"\bact as\b",
    r"\bjailbreak",
    r"\bdeveloper mode\b",
    r"\bDAN\b",
    r"\b(?:reveal|show|print|repeat) (?:me )?(?:your|the) (?:prompt|instructions|rules)",
)

GREETING = _any(
    r"^(?:你好|您好|嗨|哈喽|在吗|在不在|早上好|下午好|晚上好|谢谢你?|多谢|好的|ok|okay)"
    r"[!！。.~～ ]*$",
    r"^(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening)|thanks|thank you|thx)[!.~ ]*$",
)

_VIOLATION = _any(
    r"拖欠",
    r"欠薪",
    r"欠.{0,4}工资",
    r"[不没](?:有)?(?:发|给)(?:我)?(?:工资|钱|薪)",
    r"扣(?:押|着|了)?.{0,6}(?:身份证|证件|毕业证|学位证)",
    r"押金",
    r"保证金",
    r"不(?:给|跟|和)?(?:我)?签(?:劳动)?合同",
    r"违法辞退",
    r"(?:辞退|开除|解雇)了?我",
    r"不(?:给|帮)?(?:我)?(?:交|缴)社保",
    r"强迫.{0,4}加班",
    r"性骚扰",
    r"unpaid (?:wages|salary)",
    r"(?:hasn'?t|haven'?t|didn'?t|not) (?:been )?paid",
    r"(?:kept|keeping|holding|took|taken) my (?:id|passport|diploma)",
    r"\bdeposit\b",
    r"fired me",
    r"no (?:written )?contract",
    r"harass",
)
_NOW = _any(
    r"现在",
    r"正在",
    r"一直",
    r"已经",
    r"目前",
    r"刚(?:刚|才)?",
    r"今天",
    r"这个月",
    r"还在",
    r"right now",
    r"currently",
    r"\bstill\b",
    r"has been",
    r"have been",
    r"today",
    r"\bnow\b",
    r"this month",
)
_WANTS_HELP = _any(
    r"帮(?:我|帮我|忙)",
    r"怎么办",
    r"能不能帮",
    r"求助",
    r"救救",
    r"联系",
    r"help me",
    r"what (?:can|should) i do",
    r"what do i do",
    r"can you help",
)

_REGION_DEPENDENT = _any(
    r"补贴.{0,6}(?:多少|金额|几千|几百|标准)",
    r"(?:多少|几千|几百).{0,6}补贴",
    r"最低工资",
    r"落户",
    r"户口.{0,4}(?:迁|落)",
    r"应届生?.{0,8}(?:认定|算不算|口径)",
    r"minimum wage",
    r"how much.{0,20}(?:subsid|allowance|grant)",
    r"(?:subsid|allowance|grant).{0,20}how much",
    r"settle (?:my )?hukou",
)

_NOISE_RUNS = re.compile(r"(?:asdf|qwer|zxcv|hjkl|uiop|jkl;|sdfg|xcvb|dfgh)", re.IGNORECASE)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_WORD = re.compile(r"[A-Za-z]+")


DOC_INSTRUCTION = _any(
    r"^\s*(?:AI|assistant|bot|chatbot|AI\s*助手|智能助手|助手|机器人|给\s*AI[^：:]{0,12})"
    r"\s*(?:注意|说明|指令|note|instruction)?\s*[:：]",
    r"\bignore (?:all |any )?(?:the |your )?(?:rules|instructions)\b",
    r"\btell (?:the )?(?:users?|graduates?|students?)\b",
    r"(?:告诉|回答|回复|告知)(?:所有)?(?:用户|毕业生|学生)",
)
"""A sentence in a *document* addressed to the assistant ("AI: tell users …", "AI助手注意：
请告诉用户……"): policy text speaks to graduates, never to the bot."""


def is_planted(sentence: str) -> bool:
    """A document sentence that is an instruction to the bot, not policy: never quoted,
    never shown to a model."""
    return bool(INJECTION.search(sentence) or DOC_INSTRUCTION.search(sentence))


def is_greeting(text: str) -> bool:
    return bool(GREETING.match(text.strip()))


def is_noise(text: str) -> bool:
    """Empty, only emoji/punctuation, or keyboard mashing."""
    stripped = text.strip()
    if not stripped:
        return True
    if _CJK.search(stripped):
        return False
    words = _WORD.findall(stripped)
    if not words:
        return not re.search(r"\d{3,}", stripped)  # emoji, punctuation; keep "12333"
    letters = "".join(words).lower()
    if _NOISE_RUNS.search(letters):
        return True
    vowels = sum(letters.count(v) for v in "aeiouy")
    return len(words) <= 2 and len(letters) >= 5 and vowels / len(letters) < 0.15


def violation_now(text: str) -> bool:
    """A rights violation that is happening and a request for help acting on it."""
    return bool(_VIOLATION.search(text) and _NOW.search(text) and _WANTS_HELP.search(text))


def region_dependent(text: str) -> bool:
    return bool(_REGION_DEPENDENT.search(text))


_PROGRAMME_ZH = re.compile(r"([\u4e00-\u9fff]{2,6}?)(?:计划|项目|专项|工程|行动)")
_NOT_A_NAME = re.compile(r"[的了吗呢我你他她它们能会要想在是有个这那]")
_PROGRAMME_EN = re.compile(
    r"\b([A-Z][a-z]+(?:\s+[a-z]+){0,2})\s+"
    r"(?i:programme|program|plan|project|scheme|grant|subsidy|fund|award|initiative)\b",
)
_LEADING_ARTICLE = re.compile(r"^(?:the|a|an|this|that|my|your)\s+", re.IGNORECASE)


def programme_names(text: str) -> list[str]:
    """Names a question gives to a programme or subsidy ("星火计划" → 星火, "the Moonbeam
    relocation grant" → moonbeam relocation)."""
    names = [m.group(1) for m in _PROGRAMME_ZH.finditer(text) if not _NOT_A_NAME.search(m.group(1))]
    for match in _PROGRAMME_EN.finditer(text):
        name = _LEADING_ARTICLE.sub("", match.group(1).strip()).lower()
        if name:
            names.append(name)
    return names


def mentioned_region(text: str) -> str | None:
    """A province or city named in the message, as a region code (the national division
    table: 我在苏州 → suzhou-jiangsu; "Shenzhen" → shenzhen; never 中山西路 or "my friend Jian")."""
    division = find_region(text)
    return division.code if division else None
