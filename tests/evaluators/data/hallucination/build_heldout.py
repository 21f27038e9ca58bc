"""Generate the HELD-OUT split of the hallucination labelled set. No tuning may look at it.

Written before the verifier was tuned, from domains and sentence templates that the dev split
(``build_dev.py``) does not use: rail lines, space missions, rivers, albums, laws, software
releases, museums, ships; passive voice, appositions, relative clauses, parentheses, bullet
lists, "according to" attributions. A second part, ``heldout_hand.jsonl``, is written by hand
(one pair at a time, not from templates). Run ``python .../build_heldout.py`` to rewrite
``heldout.jsonl`` (generated rows followed by the hand-written ones); seeded and reproducible.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
GIVEN = ["Astrid", "Bruno", "Camille", "Dmitri", "Esme", "Farid", "Greta", "Hugo", "Isla", "Jonas", "Keiko",
         "Leandro", "Mirela", "Niko", "Odile", "Pavel"]
FAMILY = ["Albrecht", "Barros", "Czerny", "Duval", "Eriksen", "Ferreira", "Gallo", "Hoffmann", "Ilves", "Jansen",
          "Karimi", "Laine", "Mendes", "Nyberg", "Ortega", "Petrov"]


def name(rng: random.Random, taken: set[str]) -> str:
    while True:
        full = f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}"
        if not any(p in t for t in taken for p in full.split()):
            taken.add(full)
            return full


def shift(rng: random.Random, value: int, step: int) -> int:
    while True:
        new = value + rng.choice([-2, -1, 1, 2, 3]) * step
        if new > 0 and new != value:
            return new


RAIL = [("Coastal Line", "Marlow", "Finsbay", "Eastern Rail"),
        ("Valley Express", "Dunmore", "Ashcombe", "Midland Trains"),
        ("Northern Loop", "Keswick Vale", "Torrin", "Highland Transit"),
        ("Harbour Link", "Port Elin", "Calder", "Bay Railways")]
MISSIONS = [("Helios-3", "Mars", "the Ardent rocket"), ("Tern", "Jupiter's moon Europa", "the Corvid launcher"),
            ("Lumen", "the asteroid Vesta", "the Kestrel rocket"), ("Orla", "Venus", "the Pilot-2 launcher")]
RIVERS = [("Vessa", "Lake Ormund", "the Grey Sea"), ("Tallin", "the Brann Hills", "the Bay of Cors"),
          ("Mirro", "Mount Asker", "the Southern Ocean"), ("Odra Minor", "the Kessel Plateau", "the North Channel")]
ALBUMS = [("Paper Lanterns", "The Quiet Hours"), ("Salt and Iron", "Nightjar"), ("Low Tide", "Cobalt Choir"),
          ("Northern Glass", "The Wayfarers")]
LAWS = [("Clean Harbours Act", "shipping companies"), ("Rental Fairness Act", "landlords"),
        ("Digital Records Act", "hospitals"), ("Safe Cycling Act", "city councils")]
SOFTWARE = [("Ferrite", "database"), ("Quillpad", "text editor"), ("Nimbus", "build tool"), ("Tessel", "map renderer")]


def rail(rng: random.Random, i: int) -> list[tuple[str, str, str | None]]:
    line, a, b, operator = RAIL[i]
    km, stations, minutes, opened, riders = rng.randint(40, 180), rng.randint(6, 24), rng.randint(35, 150), \
        rng.randint(1890, 1990), rng.randint(8, 60)
    ctx = (f"The {line}, operated by {operator}, runs {km} km between {a} and {b}. Opened in {opened}, it has "
           f"{stations} stations. A journey from end to end takes {minutes} minutes. According to the operator, "
           f"about {riders},000 passengers use the line each day. The line was electrified in {opened + 60}, "
           f"but it is not yet served by night trains.")
    return [
        (ctx, f"{operator} runs the {line}, which is {km} km long.", None),
        (ctx, f"There are {stations} stations on the line, which first opened in {opened}.", None),
        (ctx, f"Travelling the whole {line} takes {minutes} minutes.", None),
        (ctx, f"Around {riders},000 people ride the {line} every day, the operator says.", None),
        (ctx, f"The {line} connects {a} with {b} and was electrified in {opened + 60}. No night trains run on it.",
         None),
        (ctx, f"The {line} runs {shift(rng, km, 15)} km between {a} and {b}.", "wrong_number"),
        (ctx, f"The line opened in {shift(rng, opened, 7)}.", "wrong_date"),
        (ctx, f"Night trains serve the {line}.", "negation"),
        (ctx, f"The {line} is operated by {RAIL[(i + 1) % 4][3]}.", "wrong_entity"),
        (ctx, f"The {line} has {stations} stations, and its trains reach 200 km/h.", "invented"),
        (ctx, f"A full journey takes {minutes} minutes and about {riders},000 people use it daily; it is the "
              f"busiest line in the country.", "invented"),
    ]


def mission(rng: random.Random, i: int) -> list[tuple[str, str, str | None]]:
    craft, target, rocket = MISSIONS[i]
    taken: set[str] = set()
    lead, other = name(rng, taken), name(rng, taken)
    year = rng.randint(2009, 2024)
    month = ["March", "June", "September", "November"][i]
    mass, cost, instruments = rng.randint(4, 30) * 100, rng.randint(3, 19) * 100, rng.randint(4, 12)
    ctx = (f"{craft}, a probe bound for {target}, was launched in {month} {year} on {rocket}. The spacecraft weighs "
           f"{mass} kg and carries {instruments} instruments. Its principal investigator is {lead}. The mission "
           f"cost {cost} million dollars, less than its predecessor. Unlike earlier probes, {craft} does not "
           f"carry a lander.")
    return [
        (ctx, f"{craft} was launched on {rocket} in {month} {year}.", None),
        (ctx, f"The probe, which weighs {mass} kg, is headed for {target}.", None),
        (ctx, f"{lead} is the mission's principal investigator.", None),
        (ctx, f"{craft} has no lander.", None),
        (ctx, f"The mission cost {cost} million dollars, which was cheaper than the probe before it.", None),
        (ctx, f"{craft} carries {shift(rng, instruments, 1)} instruments.", "wrong_number"),
        (ctx, f"{craft} was launched in {['January', 'April', 'July', 'December'][i]} {year}.", "wrong_date"),
        (ctx, f"The principal investigator of {craft} is {other}.", "wrong_entity"),
        (ctx, f"{craft} carries a lander.", "negation"),
        (ctx, "The mission cost more than its predecessor.", "comparative"),
        (ctx, f"{craft} weighs {mass} kg. It will arrive at {target} after a seven-year cruise.", "invented"),
        (ctx, f"{craft} was launched in {year} and weighs {shift(rng, mass, 100)} kg.", "wrong_number"),
    ]


def river(rng: random.Random, i: int) -> list[tuple[str, str, str | None]]:
    riv, source, mouth = RIVERS[i]
    length, basin, bridges, depth = rng.randint(120, 900), rng.randint(3, 40) * 1000, rng.randint(5, 40), \
        rng.randint(3, 25)
    ctx = (f"The {riv} rises in {source} and flows {length} km to {mouth}. Its basin covers {basin:,} square "
           f"kilometres. The river is crossed by {bridges} bridges. At its deepest point it is {depth} metres deep. "
           f"It is the longest river in the region, and it freezes in most winters.")
    return [
        (ctx, f"The {riv} is {length} km long and flows into {mouth}.", None),
        (ctx, f"The source of the {riv} is in {source}.", None),
        (ctx, f"{bridges} bridges cross the {riv}.", None),
        (ctx, f"No river in the region is longer than the {riv}.", None),
        (ctx, f"The {riv} reaches a depth of {depth} metres and usually freezes in winter.", None),
        (ctx, f"The {riv} rises in {mouth} and flows to {source}.", "swapped_roles"),
        (ctx, f"Its basin covers {shift(rng, basin // 1000, 2) * 1000:,} square kilometres.", "wrong_number"),
        (ctx, f"The {riv} is the shortest river in the region.", "superlative"),
        (ctx, f"The {riv} never freezes.", "negation"),
        (ctx, f"The {riv} is {length} km long and is navigable by cargo ships along its whole length.", "invented"),
        (ctx, f"The {riv} is crossed by {depth} bridges.", "misbound_number"),
    ]


def album(rng: random.Random, i: int) -> list[tuple[str, str, str | None]]:
    title, band = ALBUMS[i]
    taken: set[str] = set()
    producer, singer, stranger = name(rng, taken), name(rng, taken), name(rng, taken)
    year, tracks, weeks, copies = rng.randint(1975, 2020), rng.randint(8, 16), rng.randint(2, 30), rng.randint(2, 40)
    ctx = [f"{title} is the third studio album by {band}, released in {year}. It was produced by {producer} and "
           f"has {tracks} tracks.",
           f"The album spent {weeks} weeks in the charts and sold {copies}00,000 copies. Singer {singer} wrote all of "
           f"the lyrics. Critics praised the album, although it did not win any awards."]
    return [
        (ctx, f"{band} released {title}, their third studio album, in {year}.", None),
        (ctx, f"{producer} produced {title}, which has {tracks} tracks.", None),
        (ctx, f"All the lyrics on {title} were written by {singer}.", None),
        (ctx, f"The album stayed in the charts for {weeks} weeks.", None),
        (ctx, f"{title} was well received by critics but won no awards.", None),
        (ctx, f"{title} is the second studio album by {band}.", "wrong_number"),
        (ctx, f"{title} was produced by {stranger}.", "wrong_entity"),
        (ctx, f"{title} won several awards.", "negation"),
        (ctx, "Critics disliked the album.", "antonym"),
        (ctx, f"{title} sold {shift(rng, copies, 3)}00,000 copies.", "wrong_number"),
        (ctx, f"{title} came out in {year} and was recorded in a church in Iceland.", "invented"),
        (ctx, f"{producer} wrote all of the lyrics on {title}.", "swapped_roles"),
    ]


def law(rng: random.Random, i: int) -> list[tuple[str, str, str | None]]:
    act, who = LAWS[i]
    passed, effective, fine, votes_for, votes_against = rng.randint(2001, 2020), 0, rng.randint(5, 90) * 1000, \
        rng.randint(200, 300), rng.randint(40, 150)
    effective = passed + rng.randint(1, 3)
    ctx = (f"The {act} was passed in {passed} by {votes_for} votes to {votes_against} and took effect in "
           f"{effective}. It requires {who} to publish an annual report. Breaches can be fined up to "
           f"{fine:,} euros. Small firms with fewer than 10 staff are exempt.")
    return [
        (ctx, f"The {act} passed by {votes_for} votes to {votes_against} in {passed}.", None),
        (ctx, f"The act came into force in {effective}.", None),
        (ctx, f"Under the {act}, {who} must publish a report every year.", None),
        (ctx, f"The maximum fine is {fine:,} euros.", None),
        (ctx, "Firms with fewer than 10 employees do not have to comply.", None),
        (ctx, f"The {act} was passed by {votes_against} votes to {votes_for}.", "swapped_roles"),
        (ctx, f"The act took effect in {shift(rng, effective, 2)}.", "wrong_date"),
        (ctx, f"Breaches can be fined up to {shift(rng, fine // 1000, 10) * 1000:,} euros.", "wrong_number"),
        (ctx, f"Small firms are not exempt from the {act}.", "negation"),
        (ctx, f"The {act} requires {who} to publish an annual report and to appoint an independent auditor.",
         "invented"),
        (ctx, "Firms with more than 10 staff are exempt.", "comparative"),
    ]


def software(rng: random.Random, i: int) -> list[tuple[str, str, str | None]]:
    prod, kind = SOFTWARE[i]
    major, minor = rng.randint(2, 9), rng.randint(0, 9)
    day, month = rng.randint(2, 27), ["February", "May", "August", "October"][i]
    year = rng.randint(2019, 2025)
    speed = rng.randint(15, 70)
    ctx = ("Release notes:\n"
           f"- {prod} {major}.{minor}, an open-source {kind}, was released on {day} {month} {year}.\n"
           f"- Queries are {speed}% faster than in {major}.{minor - 1 if minor else 0}.\n"
           f"- Support for Windows 7 was dropped.\n"
           f"- The plugin API is unchanged, so existing plugins keep working.")
    return [
        (ctx, f"{prod} {major}.{minor} came out on {day} {month} {year}.", None),
        (ctx, f"{prod} is an open-source {kind}.", None),
        (ctx, f"In this release, queries run {speed}% faster.", None),
        (ctx, "Windows 7 is no longer supported.", None),
        (ctx, "Existing plugins keep working because the plugin API did not change.", None),
        (ctx, f"{prod} {major}.{minor} was released on {day} {month} {year + 1}.", "wrong_date"),
        (ctx, f"Queries are {shift(rng, speed, 5)}% faster than before.", "wrong_number"),
        (ctx, f"Queries are {speed}% slower than in the previous version.", "antonym"),
        (ctx, "Support for Windows 7 was added.", "antonym"),
        (ctx, "The plugin API changed, so plugins must be rewritten.", "negation"),
        (ctx, f"{prod} {major}.{minor} was released in {month} {year} and is the first version with a cloud "
              f"edition.", "invented"),
    ]


HAND_FILE = HERE / "heldout_hand.jsonl"


def build() -> list[dict[str, object]]:
    rng = random.Random(777001)
    rows: list[dict[str, object]] = []
    for domain, make, n in (("rail", rail, 4), ("space", mission, 4), ("river", river, 4), ("music", album, 4),
                            ("law", law, 4), ("software", software, 4)):
        for i in range(n):
            for j, (ctx, out, kind) in enumerate(make(rng, i)):
                contexts = ctx if isinstance(ctx, list) else [ctx]
                rows.append({"id": f"heldout-{domain}{i}-{j}", "split": "heldout", "domain": domain,
                             "category": kind or "faithful", "contexts": contexts, "output": out,
                             "verdict": "supported" if kind is None else
                             ("unsupported" if kind == "invented" else "contradicted"),
                             "label": "pass" if kind is None else "fail"})
    for line in HAND_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


if __name__ == "__main__":
    data = build()
    with (HERE / "heldout.jsonl").open("w", encoding="utf-8") as fh:
        for row in data:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"heldout.jsonl: {len(data)} rows")
