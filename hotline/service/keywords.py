"""What a text to the hotline asks for (STOP, START, HELP, STATUS <code>, a rating, thanks) and
which language it is in: rules of the SMS hotline, whatever carries the text."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from hotline.service.cases import normalize_code

CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")  # Chinese characters

_LATIN_WORDS = re.compile(r"[A-Za-z]{2,}")

# "TD" (and "T") is how texts in China are unsubscribed from ("回复TD退订"): people send it
# to any number that texts them, and must never get a case for it.
STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
     "TD", "T", "退订", "取消订阅"}
)  # fmt: skip
START_WORDS = frozenset({"START", "UNSTOP", "订阅", "恢复订阅"})
HELP_WORDS = frozenset({"HELP", "帮助"})
# A word of thanks or assent alone (after a reply, a rating): no request of its own. Every
# keyword is compared with the punctuation around it taken off (_AROUND).
THANKS_WORDS = frozenset({
    "谢谢", "谢谢你", "谢谢您", "多谢", "感谢", "非常感谢", "谢谢了",
    "好的", "好", "收到", "知道了",
    "OK", "OKAY", "THANKS", "THANK YOU", "THANKYOU", "THX",
})  # fmt: skip
_AROUND = " \t\n。，,.!！~～…?？:：;；、"
# "查询 CODE", and as people also write it: "进度 CODE", "查 CODE", "查询编号CODE", "Status of
# CODE?", the code with a space in it, a word of thanks after it.
_STATUS = re.compile(
    r"^(?:STATUS(?:\s+OF(?=\s))?|查询进度|查进度|进度查询|查询编号|查询|进度|查)\s*[:：#]?\s*#?"
    r"([A-Za-z0-9 -]*?)[\s,，。.!！]*(?:谢谢|THANKS|THANK YOU)?$",
    re.IGNORECASE,
)
# A rating as people text it back to "reply 1 (dissatisfied) to 5": "4", "4分", "五星",
# "5/5", "4 stars", "4分，满意". The number, a unit, and after it nothing but a verdict.
_RATING = re.compile(r"^([1-5一二两三四五])\s*(?:分|星|颗星|STARS?|/\s*5|OUT OF 5)?(.*)$", re.S)
_NUMERALS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
# A verdict alone, as a rating (the thanks say back which number it was taken for): the
# request's own ends ("1（不满意）至 5（非常满意）", "1 (poor) to 5 (very good)") and the
# words between.
VERDICT_RATINGS = {
    "非常满意": 5, "很满意": 5, "满分": 5, "好评": 5, "五星好评": 5, "VERY SATISFIED": 5,
    "EXCELLENT": 5, "VERY GOOD": 5,
    "满意": 4, "比较满意": 4, "挺满意": 4, "SATISFIED": 4,
    "基本满意": 3,
    "不太满意": 2,
    "不满意": 1, "很不满意": 1, "非常不满意": 1, "差评": 1, "NOT SATISFIED": 1,
    "DISSATISFIED": 1, "UNSATISFIED": 1, "POOR": 1,
}  # fmt: skip
# After a number ("4分，还行"), these too; alone they say too little ("一般", "good").
VERDICT_WORDS = frozenset(VERDICT_RATINGS) | {
    "一般", "还行", "还可以", "GOOD", "GREAT", "FINE", "BAD",
}  # fmt: skip
_BETWEEN = re.compile(f"[{re.escape(_AROUND)}]+")
# Emoji, with their joiners and variation selectors (skin tones are emoji of their own): taken
# off before a reply is read as thanks or a rating ("谢谢🙏", "5分👍"). Alone, only these
# read as thanks; any other (🔥, ⚠️) is a text of its own, as a request may be.
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f\u200d]")
THANKS_EMOJI = frozenset("👍🙏👌😊🙂😀😃😄😁🤝👏💐🌹❤✌🥰😘💯🌸\ufe0f\u200d")
_SKIN_TONES = frozenset(chr(c) for c in range(0x1F3FB, 0x1F400))


# A text that begins with a request's code adds to that request: "[CODE] ..." as members'
# replies begin, "【CODE】", "CODE：...", "CODE ...". Without brackets the code must look like
# one as typed (capitals or a digit in it): "streets are dark" begins with no code.
_ADDRESSED = re.compile(
    r"^\s*(?:[\[【(（]\s*([A-Za-z0-9 -]{7,9}?)\s*[\]】)）]|([A-Z0-9]{7}|(?=[a-z]*[0-9])[a-z0-9]{7})"
    r"(?=[\s:：,，.。]))",
)


ADDRESS_SPAN = 16  # characters at a text's start a code it is addressed with may take


def addressed_to(body: str) -> str | None:
    """The request code a text begins with, if it begins with one (full-width forms count
    as their ASCII ones)."""
    # The start is enough (a bracket, nine code characters, a separator): on every text,
    # the whole body need not be normalized.
    match = _ADDRESSED.match(unicodedata.normalize("NFKC", body[:ADDRESS_SPAN]))
    if match is None:
        return None
    return normalize_code(match.group(1) or match.group(2))


def only_code(body: str) -> str | None:
    """The request code a text is, when it is that and nothing more ("K7M4QXA",
    "[K7M4QXA]", "k7m4-qxa。"): someone asking after their request by its code alone."""
    if len(body) > ADDRESS_SPAN:
        return None
    word = unicodedata.normalize("NFKC", body).strip(_AROUND + "[]【】()（）#")
    return normalize_code(word) if word else None


@dataclass(frozen=True)
class Keyword:
    kind: str  # "stop", "start", "help", "status", "rating", "thanks" or "text"
    code: str | None = None
    rating: int | None = None


def classify(body: str, opt_out_type: str | None = None) -> Keyword:
    """What a text asks for. Full-width letters and digits count as their ASCII forms; the
    provider's own opt-out verdict (Twilio's OptOutType) wins."""
    if opt_out_type in ("STOP", "START", "HELP"):
        return Keyword(opt_out_type.lower())
    word = unicodedata.normalize("NFKC", body).strip()
    upper = word.upper()
    bare = upper.strip(_AROUND)  # "退订。", "Stop." and "TD!" are STOP all the same
    if bare in STOP_WORDS:
        return Keyword("stop")
    if bare in START_WORDS:
        return Keyword("start")
    if bare in HELP_WORDS:
        return Keyword("help")
    plain = _EMOJI.sub("", bare).strip(_AROUND)  # the words said with emoji: "谢谢🙏"
    rating = _rating(plain)
    if rating is not None:
        return Keyword("rating", rating=rating)
    match = _STATUS.match(word.strip(_AROUND))  # "查询？", "STATUS?", "查询 ABCDEFG。"
    # Words after it are a code only when they make one ("NJF 9H6J"): "Status of the
    # streetlight is bad" is a request.
    if match and (" " not in match.group(1).strip() or normalize_code(match.group(1))):
        return Keyword("status", code=match.group(1).strip() or None)
    if _all_thanks(plain) or (bare and not plain and _thanks_emoji(bare)):
        return Keyword("thanks")  # "好的，谢谢", "收到👍", a lone 👍 or 🙏: no request
    if word and not bare:
        return Keyword("help")  # "?" or "…" alone: how the hotline is used
    return Keyword("text")


def _all_thanks(plain: str) -> bool:
    """Words of thanks alone, one or several: "谢谢", "Thank you", "好的，谢谢"."""
    words = [w for w in _BETWEEN.split(plain) if w]
    return plain in THANKS_WORDS or (bool(words) and all(w in THANKS_WORDS for w in words))


def _thanks_emoji(emoji: str) -> bool:
    return all(ch in THANKS_EMOJI or ch in _SKIN_TONES or ch in _AROUND for ch in emoji)


def _rating(bare: str) -> int | None:
    """The rating a text gives (1-5), if it is one: the number first, in digits or Chinese,
    with or without its unit, and nothing after it but words of verdict or thanks."""
    words = [w for w in _BETWEEN.split(bare) if w]
    if bare in VERDICT_RATINGS:
        return VERDICT_RATINGS[bare]  # "非常满意" alone
    if words and words[0] in VERDICT_RATINGS and all(w in THANKS_WORDS for w in words[1:]):
        return VERDICT_RATINGS[words[0]]  # "满意，谢谢"
    match = _RATING.match(bare)
    if match is None:
        return None
    rest = [w for w in _BETWEEN.split(match.group(2)) if w]
    said = " ".join(rest)  # "very satisfied", one verdict of two words
    if said not in VERDICT_WORDS and any(w not in VERDICT_WORDS | THANKS_WORDS for w in rest):
        return None  # "3号楼路灯坏了", "5.5": a text of its own
    number = match.group(1)
    return int(number) if number.isdigit() else _NUMERALS[number]


def detect_language(text: str, default: str) -> str:
    """en when the text is written in English words — a phone's curly apostrophe, a dash, an
    accented letter or a Chinese place name among them ("Trucks block our gate on 嘉创路
    every morning") — zh-CN when it is mostly Chinese; else `default`. A Chinese character
    weighs as a word, and a lone "OK" in a Chinese text does not make it English."""
    words, chinese = _weights(text)
    plain = _plain(words, chinese)
    if plain is not None:
        return plain
    if words and not chinese:  # "OK", "Help me": English all the same
        return "en"
    return "zh-CN" if chinese else default


def plainly_in(text: str) -> str | None:
    """The text's language when it says so plainly (some Chinese, or three English words);
    None for "OK", a code or "Photo: IMG_2041", which a reply should not go by."""
    return _plain(*_weights(text))


def _weights(text: str) -> tuple[int, int]:
    """English words, and Chinese characters (each weighs as a word)."""
    return len(_LATIN_WORDS.findall(text)), len(CJK.findall(text))


def _plain(words: int, chinese: int) -> str | None:
    if chinese and chinese >= words:
        return "zh-CN"
    return "en" if words >= 3 and words > chinese else None


# Words of danger that make a text urgent (the web form's box to tick, which a text has
# not): fire, smoke, an explosion, a gas leak, someone trapped, hurt, collapsed or poisoned.
# Specific on purpose: "水管泄漏", "被困扰", "fire hydrant" and "不紧急" are not (a
# needless alarm only texts the standing head; a missed one holds a fire for Monday).
_URGENT = re.compile(
    r"着火|起火|失火|火灾|冒烟|爆炸|(?:燃气|煤气|天然气|液化气|毒气|化学品|危化品)泄[漏露]"
    r"|被困(?!扰)|困在|困人|有人受伤|人员受伤|受伤了|伤亡|救命|晕倒|昏迷|溺水|车祸|流血"
    r"|触电|中毒|坍塌|塌陷|(?<![不非没无])(?<!不是)紧急"
    r"|\b(?:ON FIRE|FIRE BROKE|A FIRE|THE FIRE|FIRES|SMOKE|EXPLOSIONS?|EXPLODED|TRAPPED"
    r"|INJURED|SOMEONE IS HURT|GAS LEAK(?:ING)?|LEAKING GAS|COLLAPSED|EMERGENCY)\b"
    r"|(?<!NOT )\bURGENT\b",
    re.IGNORECASE,
)


def is_urgent(text: str) -> bool:
    """Whether a text's words say it is urgent (a hazard: the standing head hears at once)."""
    return bool(_URGENT.search(unicodedata.normalize("NFKC", text)))
