"""Generate the DEV split of the hallucination labelled set (the split the verifier is tuned on).

Run ``python tests/evaluators/data/hallucination/build_dev.py`` to rewrite ``dev.jsonl``. Seeded:
the output is identical on every run. The held-out split is built by ``build_heldout.py`` from
other domains, other sentence templates and a hand-written part; nothing here is shared with it.

Each *frame* is one invented subject with several facts (names, numbers with units, dates, a
relation between two entities, a negated fact, a comparative or superlative). Its context is a
multi-sentence paragraph; outputs are faithful paraphrases (pass) or one hallucination type
(fail): invented addition, wrong number, number bound to the wrong entity, wrong date, wrong
entity, swapped roles, negation, antonym, wrong comparative/superlative, wrong attribute, and
long answers with one bad sentence among faithful ones.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
FIRST = ["Maria", "Tomas", "Aiko", "Daniel", "Priya", "Lukas", "Fatima", "Oliver", "Ingrid", "Samuel", "Chen",
         "Elena", "Kwame", "Sofia", "Henrik", "Nadia"]
LAST = ["Okafor", "Lindqvist", "Moreau", "Tanaka", "Brennan", "Castillo", "Novak", "Haddad", "Fischer", "Osei",
        "Varga", "Delgado", "Kowalski", "Rahman", "Berger", "Sato"]
COMPANIES = ["Norbridge Systems", "Pellucid Foods", "Tarnwell Robotics", "Quillon Textiles", "Brightmoor Energy",
             "Halvard Optics", "Castor Logistics", "Meridale Pharma", "Orbis Ceramics", "Vantor Audio",
             "Kestrel Mining", "Silvan Paper"]
CITIES = ["Rotterdam", "Porto", "Gdansk", "Leeds", "Tampere", "Lyon", "Graz", "Bilbao", "Aarhus", "Turin", "Brno",
          "Cork"]
PRODUCTS = [("industrial scanners", "garden sensors"), ("frozen dumplings", "canned soups"),
            ("warehouse robots", "toy drones"), ("wool blankets", "silk scarves"), ("solar inverters", "gas boilers"),
            ("camera lenses", "reading glasses"), ("freight software", "ride-hailing apps"),
            ("insulin pens", "vitamin gummies"), ("kitchen tiles", "glass bottles"),
            ("studio headphones", "car radios"),
            ("copper ore", "iron ore"), ("recycled cardboard", "glossy magazines")]
SCIENCE = [("glaciologist", "ice cores", "Antarctica"), ("marine biologist", "coral reefs", "the Red Sea"),
           ("astronomer", "variable stars", "Chile"), ("geologist", "volcanic ash", "Iceland"),
           ("botanist", "alpine mosses", "Norway"), ("entomologist", "desert beetles", "Namibia")]
PRIZES = ["Kessler Medal", "Arden Prize", "Holloway Award", "Strand Medal"]
TEAMS = ["Riverside Rovers", "Harbor City Hawks", "Northgate United", "Stonebridge Athletic", "Lakeview Lions",
         "Eastport Mariners"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def person(rng: random.Random, avoid: set[str]) -> str:
    while True:
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        if name not in avoid and not any(part in a for a in avoid for part in name.split()):
            avoid.add(name)
            return name


def other_number(rng: random.Random, value: int, step: int) -> int:
    while True:
        new = value + rng.choice([-3, -2, -1, 1, 2, 3]) * step
        if new > 0 and new != value:
            return new


def company_frame(rng: random.Random, i: int) -> list[dict[str, object]]:
    used: set[str] = set()
    name = COMPANIES[i % len(COMPANIES)]
    rival = COMPANIES[(i + 5) % len(COMPANIES)]
    target = COMPANIES[(i + 3) % len(COMPANIES)]
    city = CITIES[i % len(CITIES)]
    founder, ceo, stranger = person(rng, used), person(rng, used), person(rng, used)
    year = rng.randint(1950, 1999)
    ceo_since = rng.randint(2005, 2019)
    employees = rng.randint(12, 90) * 100
    rival_employees = other_number(rng, employees, 700)
    revenue = rng.randint(11, 95) / 10
    rev_year = rng.randint(2019, 2023)
    growth = rng.randint(3, 19)
    acq_year = rng.randint(ceo_since + 1, 2024)
    product, wrong_product = PRODUCTS[i % len(PRODUCTS)]
    ctx = (f"{name} was founded in {city} in {year} by {founder}. {ceo} has been its chief executive since "
           f"{ceo_since}. The company employs {employees:,} people, while its rival {rival} employs "
           f"{rival_employees:,}. In {rev_year}, revenue rose {growth}% to ${revenue} billion. "
           f"In {acq_year}, {name} acquired {target}. It is the largest maker of {product} in Europe. "
           f"The company is not listed on any stock exchange.")
    faithful = [
        f"{founder} founded {name} in {year}, in {city}.",
        f"Since {ceo_since}, {ceo} has been the chief executive of {name}.",
        f"{name} has {employees:,} employees.",
        f"Revenue grew by {growth}% in {rev_year}, reaching ${revenue} billion.",
        f"{name} bought {target} in {acq_year}.",
        f"{name} is Europe's largest maker of {product}.",
        f"{name} is not listed on a stock exchange.",
        f"{name} was founded in {year}. It is based in {city} and employs {employees:,} people. "
        f"Its chief executive, {ceo}, took over in {ceo_since}.",
    ]
    bad = [
        ("wrong_number", f"{name} has {other_number(rng, employees, 300):,} employees."),
        ("misbound_number", f"{name} employs {rival_employees:,} people."),
        ("wrong_date", f"{founder} founded {name} in {other_number(rng, year, 4)}."),
        ("wrong_date", f"Since {other_number(rng, ceo_since, 2)}, {ceo} has been the chief executive of {name}."),
        ("wrong_entity", f"{name} was founded by {stranger} in {year}."),
        ("wrong_entity", f"{name} was founded in {CITIES[(i + 4) % len(CITIES)]} in {year}."),
        ("swapped_roles", f"In {acq_year}, {target} acquired {name}."),
        ("negation", f"{name} is listed on a stock exchange."),
        ("antonym", f"In {rev_year}, revenue fell {growth}% to ${revenue} billion."),
        ("superlative", f"It is the smallest maker of {product} in Europe."),
        ("wrong_attribute", f"{name} is the largest maker of {wrong_product} in Europe."),
        ("invented", f"{name} plans to open a research centre in Singapore next year."),
        ("long_mixed", f"{name} was founded in {year} by {founder}. It employs {employees:,} people. "
                       f"In {acq_year}, it acquired {target}, and it now exports to over 40 countries."),
        ("long_mixed", f"{founder} founded {name} in {city}. {ceo} has led it since {ceo_since}. "
                       f"Revenue rose {growth}% to ${other_number(rng, int(revenue * 10), 7) / 10} billion."),
    ]
    return rows_of("company", i, [ctx], faithful, bad)


def scientist_frame(rng: random.Random, i: int) -> list[dict[str, object]]:
    used: set[str] = set()
    who, colleague, stranger = person(rng, used), person(rng, used), person(rng, used)
    field, topic, place = SCIENCE[i % len(SCIENCE)]
    born = rng.randint(1940, 1975)
    month = rng.choice(MONTHS)
    expedition = rng.randint(born + 25, 2015)
    samples = rng.randint(20, 90) * 10
    prize = PRIZES[i % len(PRIZES)]
    prize_year = rng.randint(expedition + 1, 2022)
    papers = rng.randint(40, 160)
    ctx = (f"{who} is a {field} born in {month} {born}. In {expedition}, {who.split()[0]} led an expedition to "
           f"{place} that collected {samples} samples of {topic}. {who.split()[1]} was awarded the {prize} in "
           f"{prize_year}, jointly with {colleague}. Over the years, {who.split()[1]} has published more than "
           f"{papers} papers. {who.split()[1]} never held a university chair.")
    last = who.split()[1]
    faithful = [
        f"{who} was born in {month} {born}.",
        f"{who} is a {field}.",
        f"The {expedition} expedition to {place}, led by {who}, gathered {samples} samples of {topic}.",
        f"{last} and {colleague} shared the {prize} in {prize_year}.",
        f"{last} has written over {papers} papers.",
        f"{last} did not hold a university chair.",
        f"{who} is a {field} who was born in {born}. In {expedition}, {last} led an expedition to {place}. "
        f"{last} received the {prize} in {prize_year}.",
    ]
    other_month = MONTHS[(MONTHS.index(month) + rng.randint(2, 9)) % 12]
    bad = [
        ("wrong_date", f"{who} was born in {other_month} {born}."),
        ("wrong_date", f"{last} received the {prize} in {other_number(rng, prize_year, 3)}."),
        ("wrong_number", f"The expedition collected {other_number(rng, samples, 70)} samples of {topic}."),
        ("wrong_entity", f"{last} shared the {prize} with {stranger}."),
        ("wrong_entity", f"In {expedition}, {last} led an expedition to {SCIENCE[(i + 2) % 6][2]}."),
        ("wrong_attribute", f"{who} is a {SCIENCE[(i + 1) % 6][0]}."),
        ("negation", f"{last} held a university chair for many years."),
        ("comparative", f"{last} has published fewer than {papers} papers."),
        ("invented", f"{last} also founded a museum of natural history in {place}."),
        ("swapped_roles", f"{colleague} led the {expedition} expedition to {place}, and {who} joined it."),
        ("long_mixed", f"{who} was born in {born}. {last} led an expedition to {place} in {expedition}. "
                       f"{last} later became director of the national science academy."),
    ]
    return rows_of("science", i, [ctx], faithful, bad)


def sports_frame(rng: random.Random, i: int) -> list[dict[str, object]]:
    used: set[str] = set()
    team, opponent = TEAMS[i % len(TEAMS)], TEAMS[(i + 1) % len(TEAMS)]
    coach, scorer, stranger = person(rng, used), person(rng, used), person(rng, used)
    season = rng.randint(2012, 2023)
    wins, losses = rng.randint(18, 30), rng.randint(4, 14)
    goals = rng.randint(15, 34)
    capacity = rng.randint(12, 48) * 1000
    final_score = (rng.randint(2, 4), rng.randint(0, 1))
    ctx = [f"In the {season} season, the {team} won {wins} matches and lost {losses}. Their coach was {coach}. "
           f"Striker {scorer} scored {goals} goals, more than any other player in the league.",
           f"The {team} play at a stadium that holds {capacity:,} spectators. In the final, the {team} beat the "
           f"{opponent} {final_score[0]}-{final_score[1]}. The club did not win the cup that year."]
    faithful = [
        f"The {team} won {wins} matches in {season}.",
        f"{coach} coached the {team} in {season}.",
        f"{scorer} was the league's top scorer with {goals} goals.",
        f"Their stadium has a capacity of {capacity:,}.",
        f"The {team} defeated the {opponent} {final_score[0]}-{final_score[1]} in the final.",
        f"In {season}, the {team} won {wins} games and lost {losses}. {scorer} scored {goals} goals, the most "
        f"in the league.",
    ]
    bad = [
        ("wrong_number", f"The {team} won {other_number(rng, wins, 2)} matches in {season}."),
        ("misbound_number", f"The {team} lost {wins} matches in {season}."),
        ("wrong_entity", f"{stranger} coached the {team} in {season}."),
        ("swapped_roles", f"The {opponent} beat the {team} in the final."),
        ("negation", "The club won the cup that year."),
        ("superlative", f"{scorer} scored the fewest goals in the league."),
        ("wrong_date", f"In the {other_number(rng, season, 2)} season, the {team} won {wins} matches."),
        ("invented", f"{scorer} later signed for a club in Spain for a record fee."),
        ("wrong_number", f"Their stadium holds {other_number(rng, capacity, 2000):,} spectators."),
        ("long_mixed", f"The {team} won {wins} matches in {season}, coached by {coach}. They beat the {opponent} "
                       f"in the final. {scorer} was named player of the year."),
    ]
    return rows_of("sports", i, ctx, faithful, bad)


def clinic_frame(rng: random.Random, i: int) -> list[dict[str, object]]:
    used: set[str] = set()
    doctor, stranger = person(rng, used), person(rng, used)
    town = CITIES[(i + 7) % len(CITIES)]
    open_h, close_h = rng.randint(7, 9), rng.randint(17, 20)
    beds = rng.randint(20, 120)
    opened = rng.randint(1960, 2010)
    fee = rng.randint(15, 60)
    ctx = (f"The {town} Community Clinic opened in {opened} and has {beds} beds. It is open from {open_h} am to "
           f"{close_h - 12} pm on weekdays and is closed on Sundays. Dr. {doctor} is the head of the clinic. "
           f"A first consultation costs {fee} euros; children are treated for free. Appointments are required "
           f"for blood tests.")
    faithful = [
        f"The clinic in {town} has {beds} beds.",
        f"It opens at {open_h} am on weekdays and closes at {close_h - 12} pm.",
        "The clinic does not open on Sundays.",
        f"Dr. {doctor} heads the {town} Community Clinic.",
        "Children are treated free of charge.",
        "Blood tests require an appointment.",
        f"The {town} Community Clinic, which opened in {opened}, is run by Dr. {doctor}. A first consultation "
        f"costs {fee} euros.",
    ]
    bad = [
        ("wrong_number", f"The clinic has {other_number(rng, beds, 10)} beds."),
        ("antonym", "The clinic is open on Sundays."),
        ("wrong_entity", f"Dr. {stranger} is the head of the clinic."),
        ("wrong_number", f"A first consultation costs {other_number(rng, fee, 5)} euros."),
        ("negation", "Appointments are not required for blood tests."),
        ("wrong_date", f"The clinic opened in {other_number(rng, opened, 3)}."),
        ("invented", "The clinic also offers free parking and a pharmacy."),
        ("antonym", "Children pay the full fee."),
        ("long_mixed", f"The clinic opened in {opened} and has {beds} beds. It is closed on Sundays. "
                       f"It has an emergency department that is open around the clock."),
    ]
    return rows_of("clinic", i, [ctx], faithful, bad)


def rows_of(domain: str, i: int, contexts: list[str], faithful: list[str], bad: list[tuple[str, str]]
            ) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for j, out in enumerate(faithful):
        rows.append({"id": f"dev-{domain}{i}-ok{j}", "split": "dev", "domain": domain, "category": "faithful",
                     "contexts": contexts, "output": out, "verdict": "supported", "label": "pass"})
    for j, (cat, out) in enumerate(bad):
        verdict = "unsupported" if cat == "invented" else "contradicted"
        rows.append({"id": f"dev-{domain}{i}-{cat}{j}", "split": "dev", "domain": domain, "category": cat,
                     "contexts": contexts, "output": out, "verdict": verdict, "label": "fail"})
    return rows


def build() -> list[dict[str, object]]:
    rng = random.Random(20261206)
    rows: list[dict[str, object]] = []
    for i in range(4):
        rows += company_frame(rng, i)
    for i in range(3):
        rows += scientist_frame(rng, i)
    for i in range(3):
        rows += sports_frame(rng, i)
    for i in range(3):
        rows += clinic_frame(rng, i)
    # The 82 legacy fixtures were tuned on (both of their splits): they belong to dev.
    legacy = HERE.parent / "hallucination_fixtures.jsonl"
    for line in legacy.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append({**row, "id": "legacy-" + row["id"], "split": "dev", "domain": "legacy",
                         "category": "faithful" if row["category"] == "paraphrase" else row["category"]})
    return rows


if __name__ == "__main__":
    data = build()
    with (HERE / "dev.jsonl").open("w", encoding="utf-8") as fh:
        for row in data:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"dev.jsonl: {len(data)} rows")
