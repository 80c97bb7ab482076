"""The text formats of the household world, and the vocabulary they can produce.

Every text (observation, goal, command) is lowercase words, numbers and the punctuation tokens
"," and ".", separated by single spaces, so a word-level tokenizer needs nothing but `split()`.
The sentences follow ALFWorld's (Shridhar et al., ICLR 2021) with its capitals and glued
punctuation removed: "You arrive at fridge 1. The fridge 1 is closed." becomes
"you arrive at fridge 1 . the fridge 1 is closed .".

The policy this world is built for sees only the goal, the current observation and the last two
(observation, action) pairs, so every observation ends with what the player holds and that
object's state ("you hold apple 1 , clean , hot ." or "you hold nothing ."): the one piece of
state a player cannot otherwise recover from a short window.

The shared pieces of sentences live here and env.py composes the rest; `vocabulary()` lists the
words of both, and a test checks over random episodes that the list is exact (every word in it
is produced, and nothing outside it).
"""

from __future__ import annotations

from .world import (LAMP, MINI_FIXED, MINI_OBJECTS, MINI_OPTIONAL, MINI_ROOM, MINI_TASK_TYPES,
                    PREPOSITIONS, ROOMS, TASK_TYPES, kind_of)

STATE_ORDER = ("clean", "hot", "cool")
NOTHING_HAPPENS = "nothing happens ."


def listing(names) -> str:
    """"a cabinet 1 , a fridge 1" or "nothing" (ALFWorld writes "a" before every name)."""
    return " , ".join(f"a {n}" for n in names) if names else "nothing"


def holding(obj: str | None, states) -> str:
    """The suffix every observation ends with: "you hold nothing ." / "you hold apple 1 , hot .\""""
    if obj is None:
        return "you hold nothing ."
    tags = "".join(f" , {s}" for s in STATE_ORDER if s in states)
    return f"you hold {obj}{tags} ."


def room_description(room: str, receptacles) -> str:
    """The first observation's sentence: "you are in the kitchen . you see a cabinet 1 , … ."."""
    return f"you are in the {room} . you see {listing(receptacles)} ."


def contents_description(receptacle: str, objects) -> str:
    """What a visible receptacle holds, in ALFWorld's two forms (containers and surfaces)."""
    if PREPOSITIONS[kind_of(receptacle)] == "in":
        return f"in it , you see {listing(objects)} ."
    return f"on the {receptacle} , you see {listing(objects)} ."


# The words of the fixed parts of all sentences and commands (here and in env.py), then the
# words that come with an appliance or the desklamp, for worlds that have them.
_FIXED_WORDS = (
    ", . a are arrive at close closed from go happens hold in inventory is it look nothing on "
    "open pick put see take the to up using with you"
).split()
_EXTRA_WORDS = {"sinkbasin": ["clean"], "microwave": ["heat", "hot"], "fridge": ["cool"],
                "desklamp": ["desklamp", "turn", "use"]}
_GOAL_WORDS = {
    "pick": "put some", "clean": "put a clean", "heat": "heat some and put it",
    "cool": "put a cool", "pick_two": "put two", "look": "look at under the desklamp",
}


def vocabulary(size: str = "full") -> list[str]:
    """The sorted set of every word an observation, goal or admissible command can contain.

    `size="mini"` gives the smaller set of the mini world (one kitchen, `pick` and `clean`);
    `size="small"` the full world's words with the numbers 1 and 2 only.
    The punctuation tokens "," and "." are included: they are words of the texts.
    """
    if size == "mini":
        rooms = [MINI_ROOM]
        receptacles = [kind_of(r) for r in MINI_FIXED + MINI_OPTIONAL]
        objects = list(MINI_OBJECTS)
        numbers = ["1"]
        types = MINI_TASK_TYPES
    elif size in ("full", "small"):
        rooms = list(ROOMS)
        receptacles = [k for layout, _ in ROOMS.values() for k, _, _ in layout]
        objects = [o for _, kinds in ROOMS.values() for o in kinds] + [kind_of(LAMP)]
        most = max(high for layout, _ in ROOMS.values() for _, _, high in layout) if size == "full" else 1
        numbers = [str(i) for i in range(1, max(most, 2) + 1)]
        types = TASK_TYPES
    else:
        raise ValueError(f"size must be 'full', 'small' or 'mini', not {size!r}")
    words = set(_FIXED_WORDS) | set(rooms) | set(receptacles) | set(objects) | set(numbers)
    for thing, extra in _EXTRA_WORDS.items():
        if thing in receptacles or thing in objects:
            words.update(extra)
    for t in types:
        words.update(_GOAL_WORDS[t].split())
    return sorted(words)
