"""Claims and the light text analysis the offline verifier needs — no model, no NLP library.

- :func:`split_sentences` and :func:`split_claims` cut a text into sentences and atomic claims,
  keeping character spans into the original text, so a verdict can point at the exact words.
- :func:`analyze` extracts what a fact checker compares: content words (lightly stemmed),
  named entities (capitalised words), numbers with their unit ("3 cups", "$4.2 billion",
  "18th century", "1950s"), and negation.

The rules are heuristics for English and are deliberately simple and inspectable; the labelled
fixture set in ``tests/evaluators/data`` measures how far they get.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

# ---- spans ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A piece of a text with its character offsets (``text == source[start:end]``)."""

    text: str
    start: int
    end: int


Claim = Span

_ABBREVIATIONS = frozenset({
    "dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "u.s", "u.k", "no",
    "fig", "approx", "inc", "ltd", "co", "corp", "mt", "ft", "gen", "col", "lt", "sgt", "rev", "est",
    "dept", "univ", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
})
_BOUNDARY = re.compile(r"[.!?]+[\"'”’)\]]*\s+")
_BULLET = re.compile(r"^\s*(?:[-*•▪‣◦]|\d{1,3}[.)])\s+")


def _trim(source: str, start: int, end: int) -> Span | None:
    piece = source[start:end]
    bullet = _BULLET.match(piece)
    if bullet:
        start += bullet.end()
        piece = source[start:end]
    lead = len(piece) - len(piece.lstrip())
    trail = len(piece.rstrip())
    if trail <= lead:
        return None
    return Span(source[start + lead:start + trail], start + lead, start + trail)


def split_sentences(text: str) -> list[Span]:
    """Split text into sentences with spans; lines (e.g. bullet points) never join.

    A period ends a sentence unless it follows a known abbreviation ("Dr.", "e.g.") or a
    single capital initial ("J. K. Rowling"); a decimal point never does.
    """
    spans: list[Span] = []
    line_start = 0
    for line in text.splitlines(keepends=True):
        start = line_start
        for match in _BOUNDARY.finditer(line):
            before = line[:match.start()].rstrip(".!?")
            word = before.rsplit(None, 1)[-1] if before.split() else ""
            word_l = word.lower().lstrip("(\"'")
            if line[match.start()] == "." and (word_l in _ABBREVIATIONS
                                              or re.fullmatch(r"[A-Z]", word.lstrip("(\"'"))):
                continue
            span = _trim(text, start, line_start + match.end())
            if span is not None:
                spans.append(span)
            start = line_start + match.end()
        span = _trim(text, start, line_start + len(line))
        if span is not None:
            spans.append(span)
        line_start += len(line)
    return spans


_PRONOUN_STARTS = frozenset({
    "it", "he", "she", "they", "we", "i", "you", "there", "this", "these", "those", "its", "his", "her",
    "their", "our", "my", "your",
})
_AUX_STARTS = frozenset({
    "is", "are", "was", "were", "has", "have", "had", "can", "could", "will", "would", "may", "might",
    "must", "should", "does", "did", "do", "also",
})
_CLAUSE_BREAK = re.compile(r";\s+|,\s+(?:and|but|or|while|whereas|although|though|yet|so)\s+|\s+(?:and|but)\s+")
_WORDS = re.compile(r"\S+")


def _verb_like(word: str) -> bool:
    w = word.lower().strip(",.;:!?\"'()")
    if w in _PRONOUN_STARTS or w in _AUX_STARTS:
        return True
    # A lowercase word ending like a 3rd-person verb or a past tense ("ends", "offers", "stayed").
    return (word[:1].islower() and len(w) > 3
            and (w.endswith("ed") or (w.endswith("s") and not w.endswith(("ss", "us", "is")))))


def _clause_cuts(sentence: str) -> list[tuple[int, int]]:
    """(cut_start, cut_end) offsets where one clause ends and the next begins."""
    cuts: list[tuple[int, int]] = []
    for match in _CLAUSE_BREAK.finditer(sentence):
        left = sentence[:match.start()]
        right = sentence[match.end():]
        left_words, right_words = _WORDS.findall(left), _WORDS.findall(right)
        sep = match.group(0).strip().lower()
        if sep == ";":
            ok = len(left_words) >= 2 and len(right_words) >= 2
        elif sep.startswith(","):
            # ", and" also ends Oxford-comma lists ("a, b, and c"): require a clause-sized tail.
            ok = len(left_words) >= 3 and len(right_words) >= 3
        else:
            # Bare "and"/"but" joins clauses only when a pronoun or verb follows
            # ("... in 1889 and stands in Paris"), not nouns ("Germany and the Allies").
            ok = len(left_words) >= 3 and len(right_words) >= 2 and _verb_like(right_words[0])
        if ok:
            cuts.append((match.start(), match.end()))
    return cuts


def split_clauses(sentence: Span) -> list[Span]:
    """Split one sentence into clauses at ';', ', and/but/while...' and verb-led 'and'."""
    pieces: list[Span] = []
    start = 0
    for cut_start, cut_end in _clause_cuts(sentence.text):
        piece = _trim(sentence.text, start, cut_start)
        if piece is not None:
            pieces.append(piece)
        start = cut_end
    last = _trim(sentence.text, start, len(sentence.text))
    if last is not None:
        pieces.append(last)
    out = []
    for p in pieces:
        text = p.text.rstrip(" ,;:")
        out.append(Span(text, sentence.start + p.start, sentence.start + p.start + len(text)))
    return [s for s in out if s.text]


def split_claims(text: str) -> list[Claim]:
    """Atomic claims of a text: its sentences, further split into clauses, with spans."""
    return [clause for sentence in split_sentences(text) for clause in split_clauses(sentence)]


_NON_CLAIM = re.compile(
    r"^(?:sure|certainly|of course|absolutely|okay|ok|yes|no|hello|hi|hey|thanks|thank you|great question"
    r"|good question|here(?:'s| is| are)\b.*:$|i hope (?:this|that) helps|let me know|happy to help"
    r"|feel free|as an ai\b|i(?:'m| am) (?:not sure|unsure|sorry)|i (?:do not|don't|cannot|can't) (?:know|say|answer)"
    r"|(?:the )?(?:context|passage|text|document)s? (?:does|do) not (?:say|mention|provide|contain|specify)"
    r"|there is no (?:information|mention)|i could not find|no information)\b",
    re.IGNORECASE)


def is_checkable(claim: str) -> bool:
    """False for questions, greetings, filler and "I don't know": they state no fact to check."""
    stripped = claim.strip().strip("\"'“”")
    if not stripped or stripped.endswith("?"):
        return False
    if _NON_CLAIM.match(stripped):
        return False
    return bool(analyze(stripped).tokens)


# ---- features ---------------------------------------------------------------------------------

def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = _wordset("""
a an the and or but nor so yet for of to in on at by with from into onto upon over under about above below
across after afterwards before behind beside besides between beyond during except inside near off out outside
through throughout toward towards via within without against among around along amid per than then that this
these those there here where when which who whom whose what why how whether while whereas if unless because
although though since until till as is are was were be been being am has have had having do does did doing
done can could will would shall should may might must ought i me my mine myself you your yours yourself we us
our ours ourselves he him his himself she her hers herself it its itself they them their theirs themselves
one ones some any each every either neither both all most more many much few fewer less least other another
such same own only just also too very quite rather really still even ever again already almost nearly roughly
approximately about around up down not no never none nothing nobody nowhere cannot
can't won't don't doesn't didn't isn't aren't wasn't weren't hasn't haven't hadn't shouldn't wouldn't couldn't
n't 's 're 've 'd 'll 'm get gets got make makes made like well now today later whatever whenever whichever
s t dr mr mrs ms prof st jr sr
""")

NEGATIONS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere",
                       "cannot", "without", "n't"})

_NUMBER_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "dozen": 12, "half": 0.5,
}
# "one", "first" and "second" are left out on purpose: they are mostly not quantities
# ("one of the", "first powered flight", "a second opinion"); the last two are soft ordinals.
_SOFT_ORDINALS = {"first": 1, "second": 2}
_ORDINAL_WORDS = {
    "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10,
    "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14, "fifteenth": 15, "sixteenth": 16,
    "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20, "twenty-first": 21,
}
_SCALES = {"thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "mn": 1e6, "billion": 1e9, "bn": 1e9,
           "b": 1e9, "trillion": 1e12, "tn": 1e12}
_UNIT_WORDS = frozenset({"am", "pm", "a.m", "p.m", "%", "percent"})
CURRENCY_SYMBOLS = frozenset("$€£¥")

# Phrasings of one meaning, rewritten to one form before features are read, on both sides alike:
# bounds ("at least 48 hours" = "48 hours or more"; "up to 8 kg" = "no more than 8 kg") would
# otherwise read as the opposite words "least"/"more", and "twice" is the number 2.
_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.IGNORECASE), r) for p, r in (
    (r"\b(?:at least|no (?:less|fewer) than|not (?:less|fewer) than|or (?:more|longer|above|over))\b", "minimum"),
    (r"\b(?:at most|up to|no (?:more|longer|greater) than|not (?:more|longer|greater) than"
     r"|or (?:less|fewer|under|below|shorter))\b", "maximum"),
    (r"\btwice\b", "2 times"),
    (r"\bthrice\b", "3 times"),
    (r"\bper cent\b", "percent"),
))


def normalize(text: str) -> str:
    """One written form for phrasings that mean the same (bounds, "twice", "per cent")."""
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    return text
_TITLES = frozenset({"dr", "mr", "mrs", "ms", "prof", "sir", "st", "mt"})
MONTHS = frozenset({"january", "february", "march", "april", "may", "june", "july", "august", "september",
                    "october", "november", "december"})

# Pairs of opposite words (either side may be several words). Kept to general vocabulary.
ANTONYMS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("open", "opens", "opened"), ("closed", "close", "closes", "shut")),
    (("allow", "allowed", "allows", "permitted", "permit", "permits"),
     ("forbid", "forbidden", "forbids", "prohibited", "prohibit", "banned", "ban")),
    (("increase", "increased", "increases", "rise", "rose", "risen", "rises", "grew", "grow", "grows"),
     ("decrease", "decreased", "decreases", "fall", "fell", "fallen", "falls", "declined", "decline",
      "dropped", "drop", "shrank", "shrink")),
    (("win", "won", "wins"), ("lose", "lost", "loses")),
    (("safe",), ("unsafe", "dangerous")),
    (("legal",), ("illegal",)),
    (("possible",), ("impossible",)),
    (("true",), ("false",)),
    (("before", "earlier"), ("after", "later")),
    (("high", "higher", "highest"), ("low", "lower", "lowest")),
    (("large", "larger", "largest", "big", "bigger", "biggest", "greater", "greatest"),
     ("small", "smaller", "smallest", "little")),
    # Direction of a comparison, whichever adjective carries it ("5% more" / "5% smaller").
    (("more", "larger", "bigger", "higher", "greater"), ("less", "fewer", "smaller", "lower")),
    (("over", "above"), ("under", "below")),
    (("maximum",), ("minimum",)),
    (("north", "northern"), ("south", "southern")),
    (("east", "eastern"), ("west", "western")),
    (("alive",), ("dead",)),
    (("accept", "accepted", "accepts", "approved", "approve"), ("reject", "rejected", "rejects", "denied")),
    (("include", "includes", "included"), ("exclude", "excludes", "excluded")),
    (("succeed", "succeeded", "success", "successful"), ("fail", "failed", "failure", "unsuccessful")),
    (("buy", "bought", "buys"), ("sell", "sold", "sells")),
    (("import", "imports", "imported"), ("export", "exports", "exported")),
    (("enable", "enabled", "enables"), ("disable", "disabled", "disables")),
    (("available",), ("unavailable",)),
    (("present",), ("absent",)),
    (("positive",), ("negative",)),
    (("required", "mandatory"), ("optional",)),
    (("public",), ("private",)),
    (("young", "younger", "youngest"), ("old", "older", "oldest", "elderly")),
    (("hot", "hotter", "hottest", "warm", "warmer", "warmest"), ("cold", "colder", "coldest", "cool", "cooler",
                                                                  "coolest")),
    (("always",), ("rarely", "seldom")),
    (("increase", "more", "most"), ("less", "fewer", "fewest", "least")),
    (("long", "longer", "longest"), ("short", "shorter", "shortest")),
    (("fast", "faster", "fastest"), ("slow", "slower", "slowest")),
    (("cheap", "cheaper", "cheapest"), ("expensive", "dearer")),
    (("busy", "busier", "busiest"), ("quiet", "quieter", "quietest")),
    (("praise", "praised", "liked", "like"), ("dislike", "disliked", "criticised", "criticized", "panned")),
    (("add", "added", "adds"), ("drop", "dropped", "remove", "removed", "removes")),
    (("free",), ("pay", "pays", "paid")),
)


def fold(text: str) -> str:
    """Lowercase and strip accents ("Gómez" -> "gomez")."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def stem(word: str) -> str:
    """A light suffix stripper: plurals, -ed, -ing, -ies and a final e, consistently on both sides.

    Not linguistics: it only has to map "released"/"release"/"releases" to one key.
    """
    w = word
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith(("ies", "ied")) and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("ing") and len(w) > 5:
        w = w[:-3]
    elif (w.endswith("ed") and len(w) > 4) or (w.endswith("es") and len(w) > 4 and w[-3] in "sxzh"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz" and w[-1].isalpha() and word.endswith(("ed", "ing")):
        w = w[:-1]  # permitted -> permitt -> permit
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


_ANTONYM_STEMS: list[tuple[frozenset[str], frozenset[str]]] = [
    (frozenset(stem(w) for w in a), frozenset(stem(w) for w in b)) for a, b in ANTONYMS]

_TOKEN = re.compile(
    # A code that starts with a letter and holds digits ("E5", "A320", "COVID-19") is one word, not a number.
    r"(?P<code>[^\W\d_]+\d[\w-]*)"
    r"|(?P<cur>[$€£¥])?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?:(?P<suf>st|nd|rd|th|s)(?!\w))?"
    r"|(?P<pct>%)|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)", re.UNICODE)


@dataclass(frozen=True)
class Number:
    """A quantity: its value, the unit word that follows it (stemmed), and its kind."""

    value: float
    unit: str | None
    kind: str = "cardinal"  # cardinal, ordinal, decade
    grouped: bool = False  # written with thousands separators ("2,000"): a count, never a year
    unit_text: str | None = field(default=None, compare=False)  # the unit as written, for reasons
    # "first"/"second" before a noun: compared with another ordinal ("second album" / "third
    # album"), never an addition by itself ("the first powered flight" says no count).
    soft: bool = False

    def key(self) -> str:
        """Token used for coverage (the value, normalised)."""
        v = self.value
        text = str(int(v)) if v == int(v) else f"{v:g}"
        return f"#{text}{'s' if self.kind == 'decade' else ''}"

    def label(self) -> str:
        """Human-readable form for reasons."""
        text = self.key()[1:]
        unit = self.unit_text or self.unit
        if self.unit in CURRENCY_SYMBOLS:
            return f"{self.unit}{text}"
        return f"{text} {unit}" if unit else text


@dataclass(frozen=True)
class Token:
    """One word or number of a text, with its position in the text."""

    raw: str
    folded: str
    start: int
    end: int
    number: float | None = None
    currency: str | None = None
    suffix: str | None = None


@dataclass(frozen=True)
class Features:
    """What the verifier compares for a claim or a context passage.

    Attributes:
        tokens: Stemmed content words plus number keys ("#1889"), in text order.
        entities: Stemmed tokens of capitalised words (proper names, months, acronyms).
        numbers: Quantities with units.
        negated: Odd number of negation words ("not", "never", "n't", "without", ...).
        words: Every stemmed word, stopwords included (for antonym checks).
        surface: Stem -> the word as written (first occurrence), to show in reasons.
    """

    tokens: tuple[str, ...]
    entities: frozenset[str]
    numbers: tuple[Number, ...]
    negated: bool
    words: frozenset[str] = field(default_factory=frozenset)
    surface: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def show(self, key: str) -> str:
        """The written form of a stemmed word (the stem itself if unknown)."""
        return self.surface.get(key, key)

    @property
    def token_set(self) -> frozenset[str]:
        """Tokens as a set."""
        return frozenset(self.tokens)


def tokenize(text: str) -> list[Token]:
    """Words and numbers of ``text`` (folded), with offsets; "n't" becomes its own token."""
    out: list[Token] = []
    for m in _TOKEN.finditer(text):
        if m.group("code"):
            out.append(Token(m.group(0), fold(m.group(0)), m.start(), m.end()))
        elif m.group("num"):
            value = float(m.group("num").replace(",", ""))
            out.append(Token(m.group(0), m.group("num"), m.start(), m.end(), number=value,
                             currency=m.group("cur"), suffix=m.group("suf")))
        elif m.group("pct"):
            out.append(Token("%", "%", m.start(), m.end()))
        else:
            raw = m.group("word")
            folded = fold(raw).replace("’", "'")
            if folded.endswith("n't") and len(folded) > 3:
                base = folded[:-3]
                out.append(Token(raw, {"ca": "can", "wo": "will", "sha": "shall"}.get(base, base),
                                 m.start(), m.end() - 3))
                out.append(Token("n't", "n't", m.end() - 3, m.end()))
                continue
            if folded.endswith("'s"):
                folded = folded[:-2]
            out.append(Token(raw, folded, m.start(), m.end()))
    return out


def _numbers(tokens: list[Token]) -> list[tuple[int, int, Number]]:
    """(first token, end token, number) for each quantity; the end excludes a content unit word."""
    found: list[tuple[int, int, Number]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        value: float | None = None
        kind = "cardinal"
        unit: str | None = None
        soft = False
        if tok.number is not None:
            value = tok.number
            if tok.suffix in ("st", "nd", "rd", "th"):
                kind = "ordinal"
            elif tok.suffix == "s" and 1000 <= value <= 2100 and value % 10 == 0:
                kind = "decade"
            if tok.currency:
                unit = tok.currency  # "$4.2 billion"; "£22 million" is "22 million pounds" (see canon)
        elif "-" not in tok.folded and tok.folded in _NUMBER_WORDS:
            value = _NUMBER_WORDS[tok.folded]
        elif tok.folded in _ORDINAL_WORDS:
            value, kind = _ORDINAL_WORDS[tok.folded], "ordinal"
        elif tok.folded in _SOFT_ORDINALS and i + 1 < len(tokens) and tokens[i + 1].folded not in STOPWORDS:
            value, kind, soft = _SOFT_ORDINALS[tok.folded], "ordinal", True
        if value is None:
            i += 1
            continue
        j = i + 1
        # "twenty five", "3 million", "$4.2 billion"
        if j < len(tokens) and tokens[j].folded in _NUMBER_WORDS and value in (20, 30, 40, 50, 60, 70, 80, 90) \
                and _NUMBER_WORDS[tokens[j].folded] < 10:
            value += _NUMBER_WORDS[tokens[j].folded]
            j += 1
        if j < len(tokens) and tokens[j].folded == "hundred" and value < 100:
            value *= 100
            j += 1
        if j < len(tokens) and tokens[j].folded in _SCALES and (tokens[j].folded not in ("m", "b", "k")
                                                                or tokens[j].start == tokens[j - 1].end):
            value *= _SCALES[tokens[j].folded]
            j += 1
        unit_text: str | None = None
        if unit is None and j < len(tokens):
            nxt = tokens[j].folded
            if nxt in _UNIT_WORDS:
                unit = "%" if nxt in ("%", "percent") else nxt.replace(".", "")
                j += 1
            elif nxt not in STOPWORDS and tokens[j].number is None and nxt not in _NUMBER_WORDS:
                unit, unit_text = stem(nxt), tokens[j].raw
        found.append((i, j, Number(value, unit, kind, grouped="," in tok.folded, unit_text=unit_text, soft=soft)))
        i = j
    return found


def analyze(text: str, proper_nouns: Iterable[str] = ()) -> Features:
    """Extract :class:`Features` from a claim or passage.

    Args:
        text: The text.
        proper_nouns: Folded words known to be names (capitalised mid-sentence elsewhere);
            a capitalised word at the start of a sentence counts as an entity only if it is one.
    """
    text = normalize(text)
    tokens = tokenize(text)
    known = set(proper_nouns)
    numbers = _numbers(tokens)
    number_at = {i: n for i, _, n in numbers}
    consumed = {k for i, j, _ in numbers for k in range(i + 1, j)}
    content: list[str] = []
    entities: set[str] = set()
    words: set[str] = set()
    surface: dict[str, str] = {}
    negations = 0
    sentence_start = True
    for i, tok in enumerate(tokens):
        if i in number_at:
            content.append(number_at[i].key())
            sentence_start = False
            continue
        if tok.number is not None or i in consumed:
            sentence_start = False
            continue
        word = tok.folded
        words.add(stem(word))
        surface.setdefault(stem(word), tok.raw)
        if word in NEGATIONS:
            negations += 1
        is_cap = tok.raw[:1].isupper()
        # A capitalised month is a date part even where it collides with a stopword ("May").
        month = is_cap and word in MONTHS
        if month or (is_cap and len(word) > 1 and word not in STOPWORDS and word not in _TITLES
                     and word not in _NUMBER_WORDS
                     and (not sentence_start or word in known
                          or (i + 1 < len(tokens) and tokens[i + 1].raw[:1].isupper()
                              and tokens[i + 1].folded not in STOPWORDS))):
            entities.add(stem(word))
        if month or (word not in STOPWORDS and word not in _NUMBER_WORDS and word not in _ORDINAL_WORDS
                     and len(word) > 1):
            content.append(stem(word))
        end = tok.end
        sentence_start = bool(re.match(r"[.!?]\s", text[end:end + 2])) or text[end:end + 1] in ("\n",)
    return Features(tokens=tuple(content), entities=frozenset(entities),
                    numbers=tuple(n for _, _, n in numbers), negated=negations % 2 == 1,
                    words=frozenset(words), surface=surface)


def proper_nouns(texts: Iterable[str]) -> frozenset[str]:
    """Folded words that appear capitalised somewhere other than at a sentence start."""
    found: set[str] = set()
    for text in texts:
        for sentence in split_sentences(text):
            toks = tokenize(sentence.text)
            for tok in toks[1:]:
                if tok.raw[:1].isupper() and tok.number is None and tok.folded not in STOPWORDS:
                    found.add(tok.folded)
    return frozenset(found)


def antonym_flips(claim_words: frozenset[str], other_words: frozenset[str]) -> list[tuple[str, str]]:
    """Opposite-word pairs (claim word, other word) where each side uses only its own word."""
    flips: list[tuple[str, str]] = []
    for a, b in _ANTONYM_STEMS:
        for mine, theirs in ((a, b), (b, a)):
            ours = claim_words & mine
            other = other_words & theirs
            if ours and other and not (other_words & mine) and not (claim_words & theirs):
                flips.append((sorted(ours)[0], sorted(other)[0]))
    # "unsafe" vs "safe", "unavailable" vs "available".
    for w in claim_words:
        if w.startswith("un") and len(w) > 4 and w[2:] in other_words and w not in other_words:
            flips.append((w, w[2:]))
    for w in other_words:
        if w.startswith("un") and len(w) > 4 and w[2:] in claim_words and w not in claim_words:
            flips.append((w[2:], w))
    # One opposite is one flip, however many pairs list it ("fewer"/"more" is a count and a direction).
    return list(dict.fromkeys(flips))


# ---- slots: what an aligned claim and context sentence are compared on ----------------------

# General-vocabulary synonym groups (paraphrase verbs and nouns): each word maps to its group's
# first stem, so "bought" aligns with "acquired" and "heads" with "leads".
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("acquire", "buy", "bought", "purchase", "take over", "took over"),
    ("found", "establish", "start", "set up", "launch", "create"),
    ("lead", "head", "run", "direct", "manage", "chair", "led", "ran"),
    ("rise", "rose", "risen", "grow", "grew", "grown", "increase", "climb", "gain", "up"),
    ("fall", "fell", "fallen", "drop", "decline", "decrease", "cut", "lower", "reduce", "down"),
    ("large", "big", "great"),
    ("small", "little", "tiny"),
    ("begin", "start", "open", "commence"),
    ("employ", "employee", "staff", "worker", "people", "personnel"),
    ("cost", "price", "fee", "pay", "charge", "charged"),
    ("win", "won", "beat", "defeat", "victory"),
    ("receive", "award", "get", "got", "win", "won", "earn", "grant"),
    ("write", "wrote", "written", "author", "pen"),
    ("hold", "held", "house", "contain", "accommodate", "capacity", "seat"),
    ("make", "made", "produce", "manufacture", "maker", "producer", "manufacturer", "build", "built"),
    ("gather", "collect", "obtain"),
    ("say", "said", "state", "according", "report", "claim"),
    ("chief executive", "ceo", "head", "boss"),
    ("travel", "journey", "trip", "ride"),
    ("connect", "link", "join", "run between"),
    ("require", "need", "must", "necessary", "mandatory"),
    ("forbid", "ban", "prohibit", "allowed"),
    ("finish", "end", "close", "complete"),
    ("effect", "effective", "force", "in force"),
    ("deep", "depth"),
    ("usually", "mostly", "often", "generally", "typically", "most"),
    ("old", "former", "previous", "earlier", "ex"),
    ("kilometre", "kilometer", "km"),
    ("metre", "meter", "m"),
    ("hour", "hr", "h"),
    ("minute", "min"),
    ("percent", "%", "per cent"),
    ("celsius", "c", "degree"),
    ("dollar", "$", "usd"),
    ("euro", "€", "eur"),
    ("pound", "£", "gbp"),
    ("yen", "¥", "jpy"),
    ("gram", "g", "gramme"),
    ("tonne", "ton", "t"),
    ("litre", "liter", "l"),
    ("second", "sec", "s"),
    ("centimetre", "centimeter", "cm"),
    ("millimetre", "millimeter", "mm"),
    ("kilogram", "kilogramme", "kilo", "kg"),
    ("milligram", "milligramme", "mg"),
    ("millilitre", "milliliter", "ml"),
)


def _canon_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for group in SYNONYMS:
        head = stem(group[0].split()[-1])
        for word in group:
            for part in word.split():
                key = stem(part)
                if part not in STOPWORDS and key not in table:
                    table[key] = head
    # Each side of an opposite pair is a group of near-synonyms too ("shut" and "closed").
    for side in (s for pair in ANTONYMS for s in pair):
        keys = [stem(w) for w in side if w not in STOPWORDS]
        heads = [table[k] for k in keys if k in table]
        head = heads[0] if heads else (keys[0] if keys else "")
        for key in keys:
            table.setdefault(key, head)
    return table


_CANON = _canon_table()


def canon(stemmed: str) -> str:
    """The synonym-group key of a stemmed word (the word itself when it has no group)."""
    return _CANON.get(stemmed, stemmed)


# Words that say "not" without a negation word: a claim with "not"/"no" may restate them
# ("no longer supported" for "support was dropped", "did not change" for "unchanged").
IMPLICIT_NEGATIVES = frozenset(stem(w) for w in (
    "drop", "dropped", "remove", "removed", "exempt", "lack", "lacks", "absent", "without", "free", "rather",
    "instead", "stop", "stopped", "end", "ended", "cease", "ceased", "abolish", "abolished", "scrap", "scrapped",
    "cancel", "cancelled", "refuse", "refused", "deny", "denied", "avoid", "unchanged", "same", "fail", "failed",
    "only", "except", "exclude", "excluded", "never", "nobody", "none", "longer"))

# Light words: their presence in a claim adds no checkable content ("usually", "reaches").
LIGHT_WORDS = frozenset(stem(w) for w in (
    "reach", "reaches", "keep", "keeps", "take", "takes", "took", "come", "came", "go", "goes", "went", "get",
    "gets", "become", "became", "remain", "remains", "stay", "stays", "stayed", "place", "part", "total",
    "currently", "whole", "entire", "overall", "certain", "various", "several", "around", "roughly", "some",
    "way", "thing", "things", "kind", "lot", "amount", "number", "level", "side",
    # Generic nouns for who or what: "people under 25" restates "members under 25".
    "people", "person", "someone", "anyone", "everyone", "thing", "something"))

_NAME_PARTICLES = frozenset({"van", "von", "de", "da", "di", "del", "der", "den", "la", "le", "du", "bin", "al"})


@dataclass(frozen=True)
class Slot:
    """One comparable item of a text in order: a content word, a name part or a number.

    Attributes:
        kind: ``word``, ``entity`` (a capitalised name part or month) or ``number``.
        key: Stemmed word, or the number's key ("#1889").
        index: Position among the text's slots.
        group: Name group: consecutive entity parts share it ("Maria Okafor"); -1 otherwise.
        number: The quantity, for numbers.
        after_by: The slot directly follows "by" (an agent in a passive: "founded by X").
    """

    kind: str
    key: str
    index: int
    group: int = -1
    number: Number | None = None
    after_by: bool = False


def slots(text: str, proper_nouns: Iterable[str] = ()) -> list[Slot]:
    """Content words, name parts and numbers of ``text`` in order (stopwords dropped)."""
    text = normalize(text)
    feats = analyze(text, proper_nouns)
    tokens = tokenize(text)
    numbers = _numbers(tokens)
    number_at = {i: (j, n) for i, j, n in numbers}
    out: list[Slot] = []
    i = 0
    group = -1
    last_entity = False
    after_by = agent = False
    while i < len(tokens):
        tok = tokens[i]
        if i in number_at:
            j, n = number_at[i]
            out.append(Slot("number", n.key(), len(out), number=n, after_by=after_by))
            after_by = last_entity = False
            i = j  # a content unit word ("3 cups") is not consumed: it follows as a word slot
            continue
        word = tok.folded
        if word == "by":
            after_by = True
            i += 1
            continue
        if last_entity and word in _NAME_PARTICLES:
            i += 1  # "Guido van Rossum", "Leonardo da Vinci": one name
            continue
        key = stem(word)
        if key in feats.entities and tok.raw[:1].isupper():
            if not last_entity:
                group += 1
                agent = after_by
            out.append(Slot("entity", key, len(out), group=group, after_by=agent))
            last_entity = True
            i += 1
            continue
        last_entity = False
        if word not in STOPWORDS and word not in NEGATIONS and len(word) > 1 and tok.number is None:
            out.append(Slot("word", key, len(out)))
            after_by = False
        elif word not in ("the", "a", "an") and not (word == "and" and agent):
            after_by = False  # "by Jane Park and Omar Haddad": both are agents
        i += 1
    return out
