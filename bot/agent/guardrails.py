"""Rule-based checks that run before retrieval: crisis, requests for a person, prompt
injection, out-of-scope topics, greetings, noise, rights violations happening now, and
questions whose answer depends on the graduate's region.

The rules are deliberately conservative in what they let through: a crisis check that
fires on a false alarm costs a supportive message; one that misses costs far more.
"""

from __future__ import annotations

import re

from bot.kb.lexical import expand_pinyin
from bot.kb.regions import REGIONS, normalise_region


def _any(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


CRISIS = _any(
    r"不想活",
    r"活着(?:没|没有)(?:意思|意义)",
    r"活不下去",
    r"想死",
    r"去死",
    r"死了算了",
    r"不如死",
    r"自杀",
    r"轻生",
    r"寻死",
    r"结束(?:自己的)?生命",
    r"结束(?:掉)?自己",
    r"一了百了",
    r"(?:从楼上|楼上|天台)?跳下去",
    r"跳(?:河|江|海|楼)",
    r"遗书",
    r"活着.{0,4}(?:意义|意思)",
    r"不想(?:再)?活",
    r"了结自己",
    r"跳楼",
    r"割腕",
    r"伤害自己",
    r"自残",
    r"suicid",
    r"kill(?:ing)? my ?self",
    r"end(?:ing)? (?:my|it) (?:life|all)",
    r"want(?:ed)? to die",
    r"(?:don'?t|do not) want to (?:live|be alive)",
    r"no reason to live",
    r"(?:no|what'?s (?:even )?the) point (?:of|in) (?:living|life|going on)",
    r"give up on life",
    r"jump(?:ing)? off (?:the |a )?(?:roof|building|bridge)",
    r"(?:life|living) (?:is(?:n'?t| not)|isnt) worth (?:it|living)",
    r"not worth living",
    r"wish i (?:was|were) dead",
    r"better off dead",
    r"self[- ]?harm",
    r"hurt(?:ing)? my ?self",
)

HANDOFF_REQUEST = _any(
    r"^/human\b",
    r"转人工",
    r"人工客服",
    r"人工服务",
    r"找人工",
    r"(?<!智能)人工(?!智能)(?:咨询|回复|帮|吗|$)",
    r"(?:找|转|要|和|跟)真人",
    r"真人(?:客服|老师|回复)",
    r"(?:我要|我想|想要?|帮我|请|能不能|可以)(?:找|联系|问问?)(?:一下)?(?:就业)?"
    r"(?:老师|辅导员|咨询师|顾问)",
    r"(?:找|联系)(?:个|一个)?(?:人|真人)(?:处理|帮|来|吗|$)",
    r"(?:和|跟|找)(?:个)?人(?:聊|说|谈)",
    r"\b(?:talk|speak|chat) (?:to|with) (?:a |an )?(?:real |live )?"
    r"(?:human|person|counsell?or|advis[eo]r|someone|somebody|agent)\b",
    r"\b(?:connect|transfer) me (?:to|with)\b",
    r"\b(?:need|want) (?:a |an |to talk to a )?(?:real )?(?:human|person|counsell?or)\b",
)

INJECTION = _any(
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

OUT_OF_SCOPE = _any(
    r"天气",
    r"气温",
    r"下雨",
    r"weather",
    r"forecast",
    r"论文",
    r"毕业设计",
    r"作业",
    r"写一篇",
    r"\bthesis\b",
    r"\bessay\b",
    r"homework",
    r"股票",
    r"基金",
    r"炒股",
    r"比特币",
    r"加密货币",
    r"理财",
    r"\bstocks?\b",
    r"crypto",
    r"bitcoin",
    r"\binvest",
    r"看病",
    r"症状",
    r"感冒",
    r"发烧",
    r"吃什么药",
    r"diagnos",
    r"symptom",
    r"\bfever\b",
    r"medicine",
    r"彩票",
    r"lottery",
    r"女朋友",
    r"男朋友",
    r"恋爱",
    r"girlfriend",
    r"boyfriend",
    r"菜谱",
    r"recipe",
    r"写代码",
    r"编程题",
    r"\bleetcode\b",
    r"debug my code",
    r"write (?:me )?(?:a |some )?code",
)

# Requests that stay out of scope even when they mention work or graduation
# ("写一篇毕业论文", "put my first salary into crypto").
STRONG_OUT_OF_SCOPE = _any(
    r"伪造",
    r"造假",
    r"办(?:个)?假(?:证|学历|文凭)",
    r"\bforg(?:e|ing|ed)\b",
    r"\bfake (?:a |my )?(?:degree|diploma|certificate|transcript|document|contract)",
    r"写.{0,12}(?:论文|综述|作文|文章|报告|代码|程序|爬虫)",
    r"文献综述",
    r"爬虫",
    r"\bpython\b",
    r"(?:write|draft) (?:me )?(?:a |an |my )?(?:thesis|essay|paper|literature review|code|script)",
    r"股票",
    r"基金",
    r"比特币",
    r"crypto",
    r"bitcoin",
    r"index funds?",
    r"\bstocks?\b",
    r"分手",
    r"break up with",
)

# Words that keep a message in scope even when an out-of-scope word appears
# ("论文答辩影响毕业去向登记吗", "can my employer make me pay for medical checks").
DOMAIN = _any(
    r"就业",
    r"工作",
    r"求职",
    r"招聘",
    r"合同",
    r"协议",
    r"工资",
    r"薪",
    r"社保",
    r"公积金",
    r"试用",
    r"公司",
    r"单位",
    r"老板",
    r"毕业",
    r"档案",
    r"户口",
    r"补贴",
    r"贷款",
    r"考公",
    r"考编",
    r"公务员",
    r"征兵",
    r"实习",
    r"见习",
    r"仲裁",
    r"劳动",
    r"维权",
    r"入职",
    r"离职",
    r"辞职",
    r"\bjobs?\b",
    r"employ",
    r"contract",
    r"salary",
    r"wage",
    r"graduat",
    r"intern",
    r"probation",
    r"social insurance",
    r"hukou",
    r"\bboss\b",
    r"company",
    r"recruit",
    r"offer",
    r"labou?r",
    r"subsid",
    r"\bloan\b",
    r"civil service",
    r"enlist",
    r"加班",
    r"补偿",
    r"赔偿",
    r"辞退",
    r"解除",
    r"面试",
    r"简历",
    r"户籍",
    r"落户",
    r"国考",
    r"事业",
    r"选调",
    r"三支一扶",
    r"西部计划",
    r"特岗",
    r"入伍",
    r"学信",
    r"报到",
    r"登记",
    r"三方",
    r"违约",
    r"押金",
    r"身份证",
    r"歧视",
    r"骗",
    r"中介",
    r"培训",
    r"热线",
    r"失业",
    r"创业",
    r"学费",
    r"国企",
    r"央企",
    r"体检",
    r"怀孕",
    r"生育",
    r"婚育",
    r"\d{5}",
    r"overtime",
    r"fired",
    r"dismiss",
    r"resign",
    r"\bquit",
    r"deposit",
    r"\bid card",
    r"passport",
    r"interview",
    r"pregnan",
    r"discriminat",
    r"scam",
    r"fraud",
    r"agency",
    r"arbitrat",
    r"holiday",
    r"\bpaid\b",
    r"\bpay\b",
    r"employer",
    r"manager",
    r"\bhr\b",
    r"hiring",
    r"degree",
    r"diploma",
    r"personnel file",
    r"archive",
    r"registration",
    r"tripartite",
    r"agreement",
    r"\bsoe\b",
    r"civil servant",
    r"\bexam",
    r"military",
    r"\barmy\b",
    r"tuition",
    r"start-?up",
    r"business",
    r"insurance",
    r"pension",
    r"unemploy",
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
_REGION_NAMES = re.compile("|".join(sorted(REGIONS, key=len, reverse=True)))
_REGION_PINYIN = re.compile(
    r"\b(" + "|".join(sorted({v for v in REGIONS.values() if v != "national"})) + r")\b",
    re.IGNORECASE,
)


def is_crisis(text: str) -> bool:
    return bool(CRISIS.search(text))


def wants_human(text: str) -> bool:
    return bool(HANDOFF_REQUEST.search(text.strip()))


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


def strip_injection(text: str) -> tuple[str, bool]:
    """Drop the sentences that try to change the bot's instructions; say if any were found."""
    pieces = re.split(r"(?<=[。！？!?；;\n])|(?<=\.)\s", text)
    kept = [p for p in pieces if p and not INJECTION.search(p)]
    found = len(kept) != len([p for p in pieces if p])
    return "".join(kept).strip() if found else text, found


def is_out_of_scope(text: str) -> bool:
    if STRONG_OUT_OF_SCOPE.search(text):
        return True
    return bool(OUT_OF_SCOPE.search(text)) and not DOMAIN.search(text)


def in_domain(text: str) -> bool:
    return bool(DOMAIN.search(expand_pinyin(text)))


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
    """A province or city named in the message, as a region code."""
    match = _REGION_NAMES.search(text)
    if match and match.group(0) != "全国":
        return normalise_region(match.group(0))
    match = _REGION_PINYIN.search(text)
    return match.group(1).lower() if match else None
