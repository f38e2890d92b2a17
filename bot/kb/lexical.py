"""The lexical side of retrieval: a Chinese/English tokenizer and an Okapi BM25 index.

Chinese is segmented with jieba (search mode) and also indexed as character bigrams, which
keeps typos and segmentation differences ("试用其", "三放协议") from losing the match.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Container, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RUN = re.compile(f"[{_CJK}]+")
_HAS_CJK = re.compile(f"[{_CJK}]")
_LATIN = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")

# Domain words jieba's default dictionary splits badly.
DOMAIN_WORDS = [
    "试用期",
    "三方协议",
    "就业协议书",
    "报到证",
    "就业报到证",
    "毕业去向登记",
    "去向登记",
    "择业期",
    "应届生",
    "应届毕业生",
    "三支一扶",
    "西部计划",
    "特岗计划",
    "特岗教师",
    "选调生",
    "扩岗补助",
    "求职创业补贴",
    "就业见习",
    "灵活就业",
    "社保",
    "社会保险",
    "公积金",
    "住房公积金",
    "违约金",
    "竞业限制",
    "服务期",
    "经济补偿",
    "二倍工资",
    "双倍工资",
    "劳动仲裁",
    "一裁终局",
    "法律援助",
    "培训贷",
    "黑中介",
    "劳动合同",
    "无固定期限",
    "加班费",
    "最低工资",
    "欠薪",
    "拖欠工资",
    "劳动监察",
    "劳动保障监察",
    "学信网",
    "征兵网",
    "助学贷款",
    "国家助学贷款",
    "学费补偿",
    "贷款代偿",
    "创业担保贷款",
    "事业单位",
    "国考",
    "省考",
    "考公",
    "考编",
    "公务员",
    "档案",
    "户口",
    "落户",
    "失业登记",
    "失业保险金",
    "宏志助航",
    "访企拓岗",
    "万企进校园",
    "乙肝",
    "就业歧视",
    "三严禁",
    "网签",
    "解约",
    "违约",
    "押金",
    "保证金",
    "扣押身份证",
    "心理援助",
]

# Graduates often type pinyin for Chinese policy terms; the English documents keep the
# Chinese term in brackets, so mapping pinyin to the characters matches both languages.
PINYIN_TERMS: dict[str, str] = {
    "guokao": "国考",
    "shengkao": "省考",
    "kaogong": "考公 公务员",
    "kaobian": "考编 事业单位",
    "shiye danwei": "事业单位",
    "shiyedanwei": "事业单位",
    "bianzhi": "编制",
    "xuandiaosheng": "选调生",
    "xuandiao": "选调生",
    "sanzhiyifu": "三支一扶",
    "san zhi yi fu": "三支一扶",
    "tegang": "特岗",
    "xibu jihua": "西部计划",
    "hukou": "户口",
    "dang'an": "档案",
    "dangan": "档案",
    "sanfang xieyi": "三方协议",
    "sanfang": "三方协议",
    "baodaozheng": "报到证",
    "shebao": "社保",
    "gongjijin": "公积金",
    "wuxian yijin": "五险一金 社保 公积金",
    "yingjiesheng": "应届生",
    "yingjie": "应届生",
    "zeyeqi": "择业期",
    "xuexin": "学信网",
    "chsi": "学信网",
    "zhengbing": "征兵",
    "laodong zhongcai": "劳动仲裁",
    "zhongcai": "仲裁",
    "peixundai": "培训贷",
    "shiyongqi": "试用期",
}
_PINYIN = re.compile(
    r"(?<![a-z])("
    + "|".join(re.escape(k) for k in sorted(PINYIN_TERMS, key=len, reverse=True))
    + r")(?![a-z])"
)


def expand_pinyin(text: str) -> str:
    """Append the Chinese term for every known pinyin policy term in ``text``."""
    found = _PINYIN.findall(text.lower())
    if not found:
        return text
    return text + " " + " ".join(dict.fromkeys(PINYIN_TERMS[m] for m in found))


_ZH_STOP = set(
    [
        "的",
        "了",
        "是",
        "在",
        "我",
        "你",
        "他",
        "她",
        "它",
        "们",
        "吗",
        "呢",
        "吧",
        "啊",
        "呀",
        "么",
        "和",
        "与",
        "及",
        "或",
        "就",
        "都",
        "也",
        "还",
        "又",
        "被",
        "把",
        "给",
        "对",
        "从",
        "向",
        "到",
        "这",
        "那",
        "哪",
        "个",
        "些",
        "之",
        "其",
        "而",
        "且",
        "如",
        "若",
        "等",
        "能",
        "会",
        "要",
        "可",
        "以",
        "为",
        "于",
        "上",
        "下",
        "中",
        "有",
        "没",
        "无",
        "不",
        "很",
        "太",
        "多",
        "少",
        "怎么",
        "怎么办",
        "什么",
        "如何",
        "怎样",
        "请问",
        "一下",
        "可以",
        "是否",
        "是不是",
        "有没有",
        "我们",
        "你们",
        "他们",
        "这个",
        "那个",
        "这样",
        "那样",
        "自己",
        "现在",
        "应该",
    ]
)
EN_STOP_WORDS = _EN_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "doing",
        "have",
        "has",
        "had",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "he",
        "she",
        "it",
        "its",
        "they",
        "them",
        "their",
        "this",
        "that",
        "these",
        "those",
        "what",
        "which",
        "who",
        "whom",
        "how",
        "when",
        "where",
        "why",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "not",
        "no",
        "yes",
        "so",
        "than",
        "then",
        "there",
        "here",
        "about",
        "into",
        "over",
        "after",
        "before",
        "up",
        "down",
        "out",
        "any",
        "some",
        "all",
        "just",
        "also",
        "very",
        "too",
        "more",
        "most",
        "much",
        "many",
        "get",
        "got",
        "there's",
        "it's",
        "i'm",
        "im",
        "dont",
        "don't",
        "please",
        "hi",
        "hello",
    ]
)


def stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


class Tokenizer:
    """Lowercased terms: jieba words (no stop words), CJK bigrams, stemmed English words.

    jieba is loaded on first use of Chinese text (its dictionary takes ~0.6 s), with its
    cache kept under ``cache_dir``.
    """

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        self._jieba: Any = None

    def _segmenter(self) -> Any:
        with self._lock:
            if self._jieba is None:
                import logging

                import jieba

                jieba.setLogLevel(logging.WARNING)
                if self._cache_dir is not None:
                    self._cache_dir.mkdir(parents=True, exist_ok=True)
                    jieba.dt.tmp_dir = str(self._cache_dir)
                jieba.initialize()
                for word in DOMAIN_WORDS:
                    jieba.add_word(word, freq=20000)
                self._jieba = jieba
        return self._jieba

    def query_terms(self, text: str, vocabulary: Container[str]) -> list[str]:
        """Terms of a query without loading jieba: every Chinese substring (2–8 characters)
        that is a word of the indexed corpus, plus bigrams and English words. Only terms
        in the corpus can score, so this matches what jieba's search mode would give while
        saving the ~0.7 s jieba needs to load its dictionary in a new process."""
        lowered = expand_pinyin(text.lower())
        tokens: list[str] = []
        for run in _CJK_RUN.findall(lowered):
            for start in range(len(run)):
                for end in range(start + 2, min(start + 8, len(run)) + 1):
                    if run[start:end] in vocabulary:
                        tokens.append(run[start:end])
            tokens.extend("~" + run[i : i + 2] for i in range(len(run) - 1))
        for word in _LATIN.findall(lowered):
            if word not in _EN_STOP and (len(word) > 1 or word.isdigit()):
                tokens.append(stem(word))
        return tokens

    def __call__(self, text: str) -> list[str]:
        lowered = expand_pinyin(text.lower())
        tokens: list[str] = []
        if _HAS_CJK.search(lowered):
            jieba = self._segmenter()
            for run in _CJK_RUN.findall(lowered):
                for word in jieba.lcut_for_search(run):
                    if len(word) >= 2 and word not in _ZH_STOP:
                        tokens.append(word)
                tokens.extend("~" + run[i : i + 2] for i in range(len(run) - 1))
        for word in _LATIN.findall(lowered):
            if word not in _EN_STOP and (len(word) > 1 or word.isdigit()):
                tokens.append(stem(word))
        return tokens


class Bm25Index:
    """Okapi BM25 over pre-tokenized documents.

    The postings are flat arrays (each term's documents and counts are one slice of
    ``_rows`` / ``_tfs``), so the index pickles and loads in milliseconds: the retriever
    keeps it in its chunk cache, and a new process does not rebuild it."""

    def __init__(self, documents: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75):
        self.k1 = k1
        self.b = b
        self.size = len(documents)
        lengths = np.array([len(d) for d in documents], dtype=np.float32)
        self._avg = float(lengths.mean()) if self.size else 0.0
        self._norm = k1 * (1 - b + b * lengths / self._avg) if self.size and self._avg else lengths
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for doc_index, document in enumerate(documents):
            for term, tf in Counter(document).items():
                rows, tfs = postings.setdefault(term, ([], []))
                rows.append(doc_index)
                tfs.append(tf)
        self._terms = {term: i for i, term in enumerate(postings)}
        counts = np.array([len(rows) for rows, _ in postings.values()], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._rows = np.array([r for rows, _ in postings.values() for r in rows], dtype=np.int64)
        self._tfs = np.array([t for _, tfs in postings.values() for t in tfs], dtype=np.float32)
        self._idf = np.log(1 + (self.size - counts + 0.5) / (counts + 0.5))

    @property
    def vocabulary(self) -> Container[str]:
        return self._terms.keys()

    def idf(self, term: str) -> float:
        """How rare a term is in the corpus (0 for a term it does not contain)."""
        i = self._terms.get(term)
        return float(self._idf[i]) if i is not None else 0.0

    def scores(self, query_tokens: Sequence[str]) -> NDArray[np.float32]:
        """A BM25 score for every document (0 where no query term occurs)."""
        scores = np.zeros(self.size, dtype=np.float32)
        for term in set(query_tokens):
            i = self._terms.get(term)
            if i is None:
                continue
            part = slice(self._offsets[i], self._offsets[i + 1])
            rows, tfs = self._rows[part], self._tfs[part]
            idf = float(self._idf[i])
            scores[rows] += idf * tfs * (self.k1 + 1) / (tfs + self._norm[rows])
        return scores
