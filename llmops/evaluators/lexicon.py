"""A demographic lexicon for counterfactual tests: find group terms in text, swap them for another group.

Six built-in categories: gender, race_ethnicity, religion, nationality, age, disability. Each
category has groups, and each group lists terms per *slot* (a grammatical role such as subject
pronoun, plural noun, female first name). Slots align terms across groups: "he" (male, subj)
becomes "she" (female, subj); the 3rd female name of one race becomes the 3rd (or, with a
rotation, another) female name of another race.

Extend or override it with the same shape, inline in a suite or from a YAML/JSON file::

    religion:
      groups:
        sikh: {adj: [Sikh], plural: [Sikhs], religion: [Sikhism], worship: [gurdwara]}

Notes on the data: first names and surnames come from the audit-study tradition (e.g.
Bertrand & Mullainathan, 2004), widened from name-frequency data by self-reported group (first
names: Tzioumis 2018, CC0; surnames: the US Census Bureau's 2010 surname table; the gender lists'
most frequent US names: SSA baby names; both public domain) — see docs/evaluators.md. They signal
a group to a model, they do not define anyone. Names match case-sensitively.
Colour adjectives ("white", "Black") and age/disability adjectives only match before a person
noun ("a Black nurse", not "black coffee"). Rewriting can leave small grammar slips (a verb
after "they"); non-binary terms are therefore not in the defaults, add them as an extension.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import EvalsetError

PERSON_NOUNS = (
    "person", "people", "man", "men", "woman", "women", "individual", "individuals", "adult", "adults",
    "child", "children", "kid", "kids", "boy", "boys", "girl", "girls", "teen", "teens", "teenager",
    "teenagers", "student", "students", "candidate", "candidates", "applicant", "applicants", "employee",
    "employees", "worker", "workers", "colleague", "colleagues", "customer", "customers", "client",
    "clients", "patient", "patients", "user", "users", "doctor", "doctors", "nurse", "nurses", "engineer",
    "engineers", "teacher", "teachers", "manager", "managers", "driver", "drivers", "neighbor", "neighbors",
    "neighbour", "neighbours", "friend", "friends", "family", "families", "parent", "parents", "mother",
    "mothers", "father", "fathers", "resident", "residents", "citizen", "citizens", "tenant", "tenants",
    "author", "authors", "writer", "writers", "artist", "artists", "scientist", "scientists", "developer",
    "developers", "programmer", "programmers", "lawyer", "lawyers", "officer", "officers", "soldier",
    "soldiers", "athlete", "athletes", "player", "players", "community", "communities", "couple",
    "couples", "immigrant", "immigrants", "refugee", "refugees", "traveler", "travelers", "traveller",
    "travellers", "voter", "voters", "leader", "leaders", "chef", "chefs", "pilot", "pilots", "scholar",
    "scholars", "entrepreneur", "entrepreneurs", "executive", "executives", "professor", "professors",
    "volunteer", "volunteers", "guy", "guys", "lady", "ladies", "gentleman", "gentlemen", "owner",
    "owners", "founder", "founders", "politician", "politicians", "singer", "singers", "actor", "actors",
    "actress", "actresses", "tourist", "tourists", "coworker", "coworkers", "boss", "nanny", "cashier",
)

# Built-in names (see docs/evaluators.md, "Where the names come from"). Per group, first names are
# index-aligned female/male lists of equal length, so a gender swap keeps the group cue.
_RACE_NAMES: dict[str, dict[str, list[str]]] = {
    "white": {
        "female": ["Emily", "Anne", "Jill", "Allison", "Sarah", "Meredith", "Kristen", "Laurie", "Carrie",
                   "Molly", "Abigail", "Claire", "Heather", "Katherine", "Megan", "Amy"],
        "male": ["Greg", "Brendan", "Todd", "Geoffrey", "Brett", "Matthew", "Neil", "Brad", "Scott", "Connor",
                 "Dustin", "Wyatt", "Cody", "Garrett", "Tanner", "Kyle"],
        "surnames": ["Walsh", "Baker", "Sullivan", "Murphy", "Miller", "Anderson", "Olson", "Larson", "Schmidt",
                     "Schultz", "Yoder", "Hansen", "Swanson", "Carlson", "Novak", "Krueger"],
    },
    "black": {
        "female": ["Lakisha", "Keisha", "Tamika", "Aisha", "Latoya", "Ebony", "Tanisha", "Latonya", "Shanice",
                   "Imani", "Tameka", "Ayanna", "Nia", "Shaniqua", "Kiara", "Tyesha"],
        "male": ["Jamal", "Darnell", "Tyrone", "Rasheed", "Kareem", "Jermaine", "Hakim", "Leroy", "DeShawn",
                 "Terrell", "Darius", "Malik", "Tremaine", "Deandre", "Marquis", "Reginald"],
        "surnames": ["Washington", "Jefferson", "Banks", "Booker", "Mosley", "Jackson", "Pierre", "Smalls",
                     "Diggs", "Gaines", "Dorsey", "Toussaint", "Wiggins", "Tillman"],
    },
    "hispanic": {
        "female": ["María", "Rosa", "Carmen", "Guadalupe", "Lucía", "Ana", "Alejandra", "Gabriela", "Yesenia",
                   "Marisol", "Leticia", "Araceli", "Juana", "Mariana", "Esperanza", "Xiomara"],
        "male": ["José", "Carlos", "Luis", "Juan", "Miguel", "Alejandro", "Francisco", "Javier", "Pedro",
                 "Jorge", "Ricardo", "Alberto", "Guillermo", "Rodrigo", "Santiago", "Joaquín"],
        # Accented forms first (swaps write them); unaccented spellings, common in English text, match too.
        "surnames": ["García", "Rodríguez", "Hernández", "López", "Martínez", "González", "Pérez", "Sánchez",
                     "Ramírez", "Torres", "Flores", "Gómez", "Díaz", "Reyes", "Morales", "Gutiérrez", "Chávez",
                     "Ramos", "Mendoza", "Vásquez", "Jiménez", "Castillo", "Garcia", "Rodriguez", "Hernandez",
                     "Lopez", "Martinez", "Gonzalez", "Perez", "Sanchez", "Ramirez", "Gomez", "Diaz",
                     "Gutierrez", "Chavez", "Vasquez", "Jimenez"],
    },
    "asian": {
        "female": ["Mei", "Yuki", "Ling", "Hana", "Xiu", "Aiko", "Priya", "Anjali", "Deepika", "Lakshmi", "Linh",
                   "Thuy", "Huong", "Jing", "Sakura", "Min-ji"],
        "male": ["Wei", "Hiroshi", "Jun", "Kenji", "Hao", "Takumi", "Raj", "Rahul", "Sanjay", "Vikram", "Minh",
                 "Tuan", "Duc", "Jian", "Hyun-woo", "Sung-min"],
        "surnames": ["Wang", "Chen", "Nguyen", "Kim", "Tanaka", "Li", "Patel", "Tran", "Park", "Pham", "Huang",
                     "Wu", "Liu", "Zhang", "Shah", "Huynh", "Choi", "Truong", "Singh", "Yamamoto", "Nakamura"],
    },
}
_RACES = tuple(_RACE_NAMES)
# The gender lists: three names per group first (the original built-in order), then the rest of
# each group's names, then the most frequent US names of the last century (SSA), all aligned.
_FEMALE_NAMES = ([n for r in _RACES for n in _RACE_NAMES[r]["female"][:3]]
                 + ["Mary", "Jennifer", "Linda", "Susan"]
                 + [n for r in _RACES for n in _RACE_NAMES[r]["female"][3:]])
_MALE_NAMES = ([n for r in _RACES for n in _RACE_NAMES[r]["male"][:3]]
               + ["James", "John", "Michael", "David"]
               + [n for r in _RACES for n in _RACE_NAMES[r]["male"][3:]])


def _race_names(group: str) -> dict[str, list[str]]:
    names = _RACE_NAMES[group]
    return {"female_names": names["female"], "male_names": names["male"], "surnames": names["surnames"]}


def _ages(centre: int, low: int, high: int) -> list[str]:
    # Canonical age first, then alternating around it, so rotations stay near the centre.
    order = [centre]
    for step in range(1, high - low + 1):
        for a in (centre + step, centre - step):
            if low <= a <= high:
                order.append(a)
    return [f"{a}-year-old" for a in order]


BUILTIN: dict[str, dict[str, Any]] = {
    "gender": {
        "slots": {"adj": {"person_noun": True}, "names": {"rotate": True, "proper": True}},
        "groups": {
            "male": {
                "subj": ["he"], "obj": ["him"], "poss": ["his"], "poss_pron": ["his"], "refl": ["himself"],
                "noun": ["man"], "nouns": ["men"], "child": ["boy"], "children": ["boys"],
                "parent": ["father", "dad"], "parents": ["fathers"], "offspring": ["son"],
                "offsprings": ["sons"], "sibling": ["brother"], "siblings": ["brothers"],
                "spouse": ["husband"], "spouses": ["husbands"], "honorific": ["Mr.", "Mr"],
                "polite": ["gentleman"], "polites": ["gentlemen"], "adj": ["male"], "names": _MALE_NAMES,
            },
            "female": {
                "subj": ["she"], "obj": ["her"], "poss": ["her"], "poss_pron": ["hers"], "refl": ["herself"],
                "noun": ["woman"], "nouns": ["women"], "child": ["girl"], "children": ["girls"],
                "parent": ["mother", "mom", "mum"], "parents": ["mothers"], "offspring": ["daughter"],
                "offsprings": ["daughters"], "sibling": ["sister"], "siblings": ["sisters"],
                "spouse": ["wife"], "spouses": ["wives"], "honorific": ["Ms.", "Ms", "Mrs.", "Mrs"],
                "polite": ["lady"], "polites": ["ladies"], "adj": ["female"], "names": _FEMALE_NAMES,
            },
        },
    },
    "race_ethnicity": {
        "slots": {"adj": {"person_noun": True}, "female_names": {"rotate": True, "proper": True},
                  "male_names": {"rotate": True, "proper": True}, "surnames": {"rotate": True, "proper": True}},
        "groups": {
            "white": {"adj": ["white", "Caucasian", "European American"], **_race_names("white")},
            "black": {"adj": ["Black", "African American", "African-American"], **_race_names("black")},
            "hispanic": {"adj": ["Hispanic", "Latino", "Latina", "Latinx"], **_race_names("hispanic")},
            "asian": {"adj": ["Asian", "Asian American", "Asian-American"], **_race_names("asian")},
        },
    },
    "religion": {
        "slots": {},
        "groups": {
            "christian": {"adj": ["Christian"], "plural": ["Christians"], "religion": ["Christianity"],
                          "worship": ["church"], "clergy": ["pastor", "priest"], "scripture": ["Bible"]},
            "muslim": {"adj": ["Muslim"], "plural": ["Muslims"], "religion": ["Islam"],
                       "worship": ["mosque"], "clergy": ["imam"], "scripture": ["Quran", "Koran"]},
            "jewish": {"adj": ["Jewish"], "plural": ["Jews"], "religion": ["Judaism"],
                       "worship": ["synagogue"], "clergy": ["rabbi"], "scripture": ["Torah"]},
            "hindu": {"adj": ["Hindu"], "plural": ["Hindus"], "religion": ["Hinduism"],
                      "worship": ["temple", "mandir"], "clergy": ["pandit"], "scripture": ["Vedas"]},
            "buddhist": {"adj": ["Buddhist"], "plural": ["Buddhists"], "religion": ["Buddhism"],
                         "worship": ["monastery"], "clergy": ["monk"], "scripture": ["sutras"]},
            "atheist": {"adj": ["atheist"], "plural": ["atheists"], "religion": ["atheism"]},
        },
    },
    "nationality": {
        "slots": {},
        "groups": {
            "american": {"adj": ["American"], "plural": ["Americans"],
                         "country": ["the United States", "the US", "the USA", "the U.S.", "America"]},
            "mexican": {"adj": ["Mexican"], "plural": ["Mexicans"], "country": ["Mexico"]},
            "chinese": {"adj": ["Chinese"], "plural": ["Chinese people"], "country": ["China"]},
            "indian": {"adj": ["Indian"], "plural": ["Indians"], "country": ["India"]},
            "nigerian": {"adj": ["Nigerian"], "plural": ["Nigerians"], "country": ["Nigeria"]},
            "german": {"adj": ["German"], "plural": ["Germans"], "country": ["Germany"]},
            "british": {"adj": ["British"], "plural": ["British people", "Britons"],
                        "country": ["the United Kingdom", "the UK", "Britain"]},
            "brazilian": {"adj": ["Brazilian"], "plural": ["Brazilians"], "country": ["Brazil"]},
        },
    },
    "age": {
        "slots": {"adj": {"person_noun": True}, "years": {"rotate": True}},
        "groups": {
            "young": {"adj": ["young"], "noun": ["young adult", "teenager", "youth"],
                      "years": _ages(25, 18, 34)},
            "middle_aged": {"adj": ["middle-aged"], "noun": ["middle-aged adult"],
                            "years": _ages(45, 35, 59)},
            "old": {"adj": ["elderly", "old", "older", "senior"],
                    "noun": ["senior citizen", "retiree", "pensioner"], "years": _ages(75, 60, 95)},
        },
    },
    "disability": {
        "slots": {"adj": {"person_noun": True}},
        "groups": {
            "nondisabled": {"adj": ["non-disabled", "able-bodied"]},
            "blind": {"adj": ["blind", "visually impaired"]},
            "deaf": {"adj": ["deaf", "hard-of-hearing"]},
            "wheelchair_user": {"adj": ["wheelchair-using"]},
            "autistic": {"adj": ["autistic"]},
            "mentally_ill": {"adj": ["mentally ill"]},
        },
    },
}

CATEGORIES = tuple(BUILTIN)


@dataclass(frozen=True)
class Slot:
    """How a slot's terms match, and whether samples rotate them.

    ``person_noun``: only before a person noun; ``proper``: case-sensitively (names, so that
    "banks" or "baker" are not read as surnames); ``rotate``: sample k uses the term k places on.
    """

    person_noun: bool = False
    rotate: bool = False
    proper: bool = False


@dataclass(frozen=True)
class Match:
    """One lexicon term found in a text."""

    start: int
    end: int
    text: str
    group: str
    slot: str
    index: int


@dataclass
class Category:
    """One category of the lexicon: groups of slot-aligned terms."""

    name: str
    groups: dict[str, dict[str, list[str]]]
    slots: dict[str, Slot] = field(default_factory=dict)
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)
    _index: dict[str, tuple[str, str, int]] = field(default_factory=dict, repr=False)

    def slot(self, name: str) -> Slot:
        """The slot's matching rules."""
        return self.slots.get(name, Slot())

    def _compile(self) -> re.Pattern[str]:
        if self._pattern is not None:
            return self._pattern
        person = "|".join(PERSON_NOUNS)
        alternatives: list[tuple[str, str]] = []
        index: dict[str, tuple[str, str, int]] = {}
        for group, slots in self.groups.items():
            for slot, terms in slots.items():
                for i, term in enumerate(terms):
                    key = term.lower()
                    index.setdefault(key, (group, slot, i))
                    body = re.escape(term).replace(r"\ ", r"\s+")
                    if self.slot(slot).person_noun:
                        body += rf"(?=\s+(?:{person})\b)"
                    if self.slot(slot).proper:
                        body = f"(?-i:{body})"
                    alternatives.append((term, body))
        # Longest first so "African American" wins over a shorter overlapping term.
        alternatives.sort(key=lambda a: -len(a[0]))
        joined = "|".join(body for _, body in alternatives) or r"(?!x)x"
        self._pattern = re.compile(rf"(?<![\w-])(?:{joined})(?![\w-])", re.IGNORECASE)
        self._index = index
        return self._pattern

    def find(self, text: str) -> list[Match]:
        """Every term of this category in ``text``, in order."""
        pattern = self._compile()
        out: list[Match] = []
        for m in pattern.finditer(text):
            key = re.sub(r"\s+", " ", m.group(0)).lower()
            group, slot, i = self._index[key]
            out.append(Match(m.start(), m.end(), m.group(0), group, slot, i))
        return out

    def replacement(self, match: Match, target: str, text: str, shift: int = 0) -> str | None:
        """The target group's term for ``match`` (None when the target lacks the slot)."""
        slot = match.slot
        if self.name == "gender" and match.text.lower() in ("her", "his"):
            slot = _her_his_slot(match, text)
        terms = self.groups[target].get(slot)
        if not terms:
            return None
        index = (match.index + shift) if self.slot(match.slot).rotate else match.index
        return _match_case(terms[index % len(terms)], match.text, _sentence_start(text, match.start))

    def mask(self, text: str, placeholder: str = "X") -> str:
        """Replace every term of the category with ``placeholder`` (hides the swapped words)."""
        return self._compile().sub(placeholder, text)


_FUNCTION_WORDS = frozenset({
    "to", "and", "or", "but", "for", "with", "at", "in", "on", "from", "by", "of", "about", "as", "that",
    "because", "so", "if", "when", "than", "then", "a", "an", "the", "this", "these", "those",
    "up", "out", "off", "down", "over", "into", "again", "too", "very", "back", "away", "now", "today",
    "tomorrow", "yesterday", "is", "was", "will", "would", "can", "could",
})


def _her_his_slot(match: Match, text: str) -> str:
    # "her" is object or possessive, "his" possessive determiner or pronoun: decide by what follows.
    following = re.match(r"\s*([A-Za-z'-]+)?", text[match.end:])
    word = following.group(1).lower() if following and following.group(1) else ""
    if match.text.lower() == "her":
        return "poss" if word and word not in _FUNCTION_WORDS else "obj"
    return "poss" if word and word not in _FUNCTION_WORDS else "poss_pron"


def _sentence_start(text: str, start: int) -> bool:
    return re.search(r"(?:^|[.!?:]\s+|\n\s*)[\"'“(]*$", text[:start]) is not None


def _match_case(term: str, original: str, at_start: bool) -> str:
    if term[:1].isupper():
        return term  # proper nouns and capitalised group names keep their own case
    if len(original) > 1 and original.isupper():
        return term.upper()
    if at_start:
        return term[:1].upper() + term[1:]
    return term


_ARTICLE = re.compile(r"\b([Aa]n?)(\s+)$")


def _fix_article(prefix: str, word: str) -> str:
    """Make "a"/"an" before a replaced word agree with it ("a Black" -> "an Asian")."""
    m = _ARTICLE.search(prefix)
    if not m:
        return prefix
    lower = word.lower()
    vowel = lower[:1] in "aeio" or bool(re.match(r"(?:8|11|18)\D|(?:8|11|18)$|8\d", lower))
    article = "an" if vowel else "a"
    if m.group(1)[0].isupper():
        article = article.capitalize()
    return prefix[:m.start()] + article + m.group(2)


@dataclass(frozen=True)
class Swap:
    """One substitution made in a variant."""

    original: str
    replacement: str


def swap(text: str, category: Category, target: str, *, shift: int = 0) -> tuple[str, list[Swap]] | None:
    """Rewrite ``text`` so every term of ``category`` names the ``target`` group.

    Returns:
        (new text, substitutions), or None when the target group has no term for a slot used.
    """
    matches = category.find(text)
    out: list[str] = []
    swaps: list[Swap] = []
    pos = 0
    for m in matches:
        new = category.replacement(m, target, text, shift)
        if new is None:
            return None
        prefix = _fix_article(text[pos:m.start], new) if new != m.text else text[pos:m.start]
        out.append(prefix)
        out.append(new)
        swaps.append(Swap(m.text, new))
        pos = m.end
    out.append(text[pos:])
    return "".join(out), swaps


class Lexicon:
    """The categories in use: the built-in ones, optionally extended.

    Args:
        extra: Extensions in the :data:`BUILTIN` shape (a mapping, or a path to YAML/JSON).
        builtin: Start from the built-in lexicon (default True).
    """

    def __init__(self, extra: Mapping[str, Any] | str | Path | None = None, *, builtin: bool = True) -> None:
        data: dict[str, dict[str, Any]] = json.loads(json.dumps(BUILTIN)) if builtin else {}
        if extra is not None:
            _merge(data, _load_extra(extra))
        self.categories: dict[str, Category] = {}
        for name, spec in data.items():
            slots = {k: Slot(**v) for k, v in (spec.get("slots") or {}).items()}
            self.categories[name] = Category(name, {g: {s: list(t) for s, t in terms.items()}
                                                    for g, terms in spec["groups"].items()}, slots)

    def category(self, name: str) -> Category:
        """A category by name.

        Raises:
            EvalsetError: for an unknown category.
        """
        if name not in self.categories:
            raise EvalsetError(f"unknown bias category '{name}'", key=name,
                               hint=f"known: {', '.join(self.categories)}")
        return self.categories[name]


def _load_extra(extra: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(extra, Mapping):
        return dict(extra)
    path = Path(extra)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvalsetError(f"lexicon file not readable: {exc.strerror}", file=path) from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            loaded = yaml.safe_load(text)
        else:
            loaded = json.loads(text)
    except Exception as exc:  # yaml and json raise different types; both mean "bad file"
        raise EvalsetError(f"lexicon file is not valid: {exc}", file=path) from None
    if not isinstance(loaded, dict):
        raise EvalsetError("lexicon file must hold a mapping of categories", file=path)
    return loaded


def _merge(data: dict[str, dict[str, Any]], extra: Mapping[str, Any]) -> None:
    for cat, spec in extra.items():
        if not isinstance(spec, Mapping) or not isinstance(spec.get("groups", {}), Mapping):
            raise EvalsetError(f"lexicon category '{cat}' must be a mapping with 'groups'", key=str(cat))
        target = data.setdefault(str(cat), {"slots": {}, "groups": {}})
        for slot, rules in (spec.get("slots") or {}).items():
            target.setdefault("slots", {})[str(slot)] = dict(rules)
        for group, terms in (spec.get("groups") or {}).items():
            if not isinstance(terms, Mapping):
                raise EvalsetError(f"lexicon group '{cat}.{group}' must map slots to term lists",
                                   key=f"{cat}.{group}")
            merged = target["groups"].setdefault(str(group), {})
            for slot, values in terms.items():
                merged[str(slot)] = [str(v) for v in (values if isinstance(values, list) else [values])]


def walk_strings(value: Any, keys: Iterable[str] | None = None) -> Iterable[str]:
    """Every string inside ``value`` (dicts, lists), restricted to top-level ``keys`` if given."""
    if isinstance(value, Mapping):
        wanted = set(keys) if keys is not None else None
        for k, v in value.items():
            if wanted is None or k in wanted:
                yield from walk_strings(v)
    elif isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from walk_strings(item)


def swap_inputs(inputs: Mapping[str, Any], category: Category, target: str, *, shift: int = 0,
                keys: Iterable[str] | None = None) -> tuple[dict[str, Any], list[Swap]] | None:
    """``inputs`` with every string rewritten for ``target`` (None if a slot has no target term)."""
    wanted = set(keys) if keys is not None else None
    swaps: list[Swap] = []

    def rewrite(value: Any) -> Any:
        if isinstance(value, str):
            result = swap(value, category, target, shift=shift)
            if result is None:
                raise _NoTerm
            swaps.extend(result[1])
            return result[0]
        if isinstance(value, Mapping):
            return {k: rewrite(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rewrite(v) for v in value]
        return value

    try:
        new = {k: (rewrite(v) if wanted is None or k in wanted else v) for k, v in inputs.items()}
    except _NoTerm:
        return None
    return new, swaps


class _NoTerm(Exception):
    """A target group lacks a term for a slot used in the inputs."""
