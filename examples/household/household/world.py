"""Room layouts, task generation and the train/held-out split of the household world.

The world copies ALFWorld's conventions (Shridhar et al., "ALFWorld: Aligning Text and Embodied
Environments for Interactive Learning", ICLR 2021): its six task types, its receptacle and object
names, numbered instances ("cabinet 2"), one room per task, containers that start closed, and the
agent walking between receptacles ("go to R") rather than between rooms. It is much smaller than
ALFWorld on purpose: four room kinds, 33 object kinds and at most 11 receptacles per room, so that
a word-level model with a vocabulary of under 100 words (46 for the mini world) can learn to act
in it.

Generation is a pure function of its arguments: `make_task` seeds its own `random.Random` from
a string made of every argument (string seeds are hashed with SHA-512 by `random`, so the result
does not depend on PYTHONHASHSEED or on the global generator).

The held-out split holds *unseen combinations*, as ALFWorld's "unseen" split holds unseen scenes:
each (task type, object kind, destination kind) triple is assigned to one split by a SHA-256
hash, so a held-out task never shares its triple, hence never its signature, with a train task.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

TASK_TYPES = ("pick", "look", "clean", "heat", "cool", "pick_two")
SPLITS = ("train", "heldout")
SIZES = ("full", "small", "mini")

# Receptacle kinds. Containers start closed and must be opened before their contents can be
# seen or used (ALFWorld: cabinet, drawer, fridge, microwave are openable).
CONTAINERS = frozenset({"cabinet", "drawer", "fridge", "microwave"})
# One preposition per receptacle kind, fixed everywhere (goals, commands, observations).
# ALFWorld writes "in/on" in its commands; we pick the natural one instead.
PREPOSITIONS = {
    "cabinet": "in", "drawer": "in", "fridge": "in", "microwave": "in", "garbagecan": "in",
    "sinkbasin": "in",
    "bed": "on", "coffeetable": "on", "countertop": "on", "desk": "on", "dresser": "on",
    "shelf": "on", "sidetable": "on", "sofa": "on",
}
# The appliance each manipulation needs, and the state it gives (ALFWorld: clean with a
# sinkbasin, heat with a microwave, cool with a fridge).
APPLIANCES = {"clean": "sinkbasin", "hot": "microwave", "cool": "fridge"}
VERBS = {"clean": "clean", "hot": "heat", "cool": "cool"}
# The object a `look` task shines on the target with, and the receptacle kinds it may stand on.
LAMP = "desklamp 1"
LAMP_STANDS = ("desk", "dresser", "sidetable")

# Room kinds: (receptacle kind, fewest, most) in listing order, and the object kinds found there.
ROOMS = {
    "kitchen": (
        (("cabinet", 1, 3), ("countertop", 1, 2), ("drawer", 1, 2), ("fridge", 1, 1),
         ("garbagecan", 0, 1), ("microwave", 1, 1), ("sinkbasin", 1, 1)),
        ("apple", "bowl", "bread", "cup", "egg", "knife", "lettuce", "mug", "pan", "plate",
         "potato", "spoon", "tomato"),
    ),
    "bathroom": (
        (("cabinet", 1, 3), ("countertop", 1, 1), ("drawer", 0, 2), ("garbagecan", 1, 1),
         ("shelf", 0, 1), ("sinkbasin", 1, 1)),
        ("candle", "cloth", "soapbar", "soapbottle", "spraybottle", "toiletpaper"),
    ),
    "bedroom": (
        (("bed", 1, 1), ("desk", 0, 1), ("drawer", 1, 3), ("dresser", 0, 1), ("garbagecan", 0, 1),
         ("shelf", 0, 2), ("sidetable", 1, 2)),
        ("alarmclock", "book", "cd", "cellphone", "creditcard", "keychain", "pen", "pencil",
         "pillow"),
    ),
    "livingroom": (
        (("cabinet", 0, 2), ("coffeetable", 1, 1), ("drawer", 0, 2), ("garbagecan", 0, 1),
         ("shelf", 0, 2), ("sidetable", 1, 2), ("sofa", 1, 1)),
        ("book", "box", "cd", "creditcard", "keychain", "newspaper", "remotecontrol", "statue",
         "vase"),
    ),
}

# The mini world: one kitchen with a countertop, a sinkbasin and one or two of the optional
# receptacles, `pick` and `clean` only, one target and one or two distractors.
MINI_ROOM = "kitchen"
MINI_FIXED = ("countertop 1", "sinkbasin 1")
MINI_OPTIONAL = ("cabinet 1", "drawer 1", "shelf 1")
MINI_OBJECTS = ("apple", "egg", "knife", "mug", "plate", "potato", "tomato")
MINI_TASK_TYPES = ("pick", "clean")

# Which object kinds each manipulation applies to in generated tasks (ALFWorld's lists, trimmed
# to our objects). Any held object can still be cleaned, heated or cooled by the player.
CLEANABLE = frozenset({"apple", "bowl", "cloth", "cup", "egg", "knife", "lettuce", "mug", "pan",
                       "plate", "potato", "soapbar", "spoon", "tomato"})
HEATABLE = frozenset({"apple", "bread", "cup", "egg", "mug", "plate", "potato", "tomato"})
COOLABLE = frozenset({"apple", "bowl", "bread", "cup", "egg", "lettuce", "mug", "pan", "plate",
                      "potato", "tomato"})
TASK_STATES = {"pick": None, "look": None, "clean": "clean", "heat": "hot", "cool": "cool",
               "pick_two": None}
TASK_OBJECTS = {"clean": CLEANABLE, "heat": HEATABLE, "cool": COOLABLE}
TASK_ROOMS = {
    "pick": ("kitchen", "bathroom", "bedroom", "livingroom"),
    "pick_two": ("kitchen", "bathroom", "bedroom", "livingroom"),
    "look": ("bedroom", "livingroom"),
    "clean": ("kitchen", "bathroom"),
    "heat": ("kitchen",),
    "cool": ("kitchen",),
}
# Destinations a task never uses: the sinkbasin (ALFWorld rarely delivers there), and the
# appliance of the task's own manipulation (heating something to put it back in the microwave).
EXCLUDED_DESTINATIONS = {"pick": {"sinkbasin"}, "pick_two": {"sinkbasin"}, "look": set(),
                         "clean": {"sinkbasin"}, "heat": {"sinkbasin", "microwave"},
                         "cool": {"sinkbasin", "fridge"}}
HELDOUT_PERCENT = 22


def kind_of(name: str) -> str:
    """The kind of a numbered instance: "cabinet 2" -> "cabinet"."""
    return name.rsplit(" ", 1)[0]


def goal_text(task_type: str, target: str, destination: str) -> str:
    """The goal sentence, one phrasing per task type, in ALFWorld's words, lowercase."""
    if task_type == "look":
        return f"look at {target} under the desklamp"
    prep = PREPOSITIONS[destination]
    return {
        "pick": f"put some {target} {prep} {destination}",
        "clean": f"put a clean {target} {prep} {destination}",
        "heat": f"heat some {target} and put it {prep} {destination}",
        "cool": f"put a cool {target} {prep} {destination}",
        "pick_two": f"put two {target} {prep} {destination}",
    }[task_type]


def split_of(task_type: str, target: str, destination: str) -> str:
    """The split a (task type, object kind, destination kind) triple belongs to.

    SHA-256 rather than `hash()`: Python's string hash changes from one process to the next.
    """
    digest = hashlib.sha256(f"{task_type}|{target}|{destination}".encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") % 100 < HELDOUT_PERCENT else "train"


@dataclass(frozen=True)
class Task:
    """One generated task instance: everything `HouseholdEnv` needs to play it.

    `receptacles` is in listing order (the order the first observation names them and the
    expert searches them). `contents` gives each receptacle's initial objects. `target` and
    `destination` are kinds ("apple", "fridge"; "desklamp" for `look`), `state` the state the
    target must have ("clean", "hot", "cool" or None), `count` how many targets to deliver (2 for
    `pick_two`), `lamp` the receptacle the desklamp stands on (or None).
    """

    task_type: str
    goal: str
    seed: int
    split: str
    size: str
    room: str
    receptacles: tuple[str, ...]
    contents: tuple[tuple[str, tuple[str, ...]], ...]
    target: str
    destination: str
    state: str | None
    count: int
    lamp: str | None

    @property
    def signature(self) -> tuple:
        """What makes two tasks "the same task": type, target, destination and room layout."""
        return (self.task_type, self.target, self.destination, self.room, self.receptacles)


def _layout(rng: random.Random, room: str, size: str) -> tuple[str, ...]:
    """The receptacles of one room, numbered per kind, in listing order."""
    if size == "mini":
        extra = rng.sample(MINI_OPTIONAL, rng.randint(1, 2))
        return tuple(sorted(MINI_FIXED + tuple(extra)))
    if size == "small":
        # One receptacle per kind: the required kinds, and each optional kind half the time.
        return tuple(f"{kind} 1" for kind, low, high in ROOMS[room][0] if low > 0 or (high > 0 and rng.random() < 0.5))
    names = []
    for kind, low, high in ROOMS[room][0]:
        names.extend(f"{kind} {i}" for i in range(1, rng.randint(low, high) + 1))
    return tuple(names)


def _candidates(task_type: str, room: str, receptacles: tuple[str, ...], size: str, split: str):
    """The (object kind, destination kind) pairs a layout allows for a task type and split."""
    objects = MINI_OBJECTS if size == "mini" else ROOMS[room][1]
    allowed = TASK_OBJECTS.get(task_type)
    if allowed is not None:
        objects = [o for o in objects if o in allowed]
    if task_type == "look":
        destinations = ["desklamp"]
    else:
        kinds = dict.fromkeys(kind_of(r) for r in receptacles)
        destinations = [k for k in kinds if k not in EXCLUDED_DESTINATIONS[task_type]]
    return [(o, d) for o in objects for d in destinations if split_of(task_type, o, d) == split]


def all_triples(size: str = "full") -> list[tuple[str, str, str]]:
    """Every (task type, object kind, destination kind) a size can generate, sorted."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, not {size!r}")
    found = set()
    for task_type in (MINI_TASK_TYPES if size == "mini" else TASK_TYPES):
        for room in ((MINI_ROOM,) if size == "mini" else TASK_ROOMS[task_type]):
            if size == "mini":
                receptacles = MINI_FIXED + MINI_OPTIONAL
            else:
                receptacles = tuple(f"{kind} 1" for kind, _, high in ROOMS[room][0] if high > 0)
            for split in SPLITS:
                found.update((task_type, o, d)
                             for o, d in _candidates(task_type, room, receptacles, size, split))
    return sorted(found)


def make_task(seed: int, split: str = "train", task_type: str | None = None,
              size: str = "full") -> Task:
    """A task of the given split, type (random if None) and size; a pure function of its arguments.

    Raises ValueError for an unknown split, size or task type, or a type the mini size lacks.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, not {size!r}")
    types = MINI_TASK_TYPES if size == "mini" else TASK_TYPES
    if task_type is not None and task_type not in types:
        raise ValueError(f"task_type must be one of {types} for size {size!r}, not {task_type!r}")
    rng = random.Random(f"household|{size}|{split}|{task_type}|{int(seed)}")
    chosen = task_type or rng.choice(types)
    while True:  # a few layouts at most: most allow some pair of this split
        room = MINI_ROOM if size == "mini" else rng.choice(TASK_ROOMS[chosen])
        receptacles = _layout(rng, room, size)
        lamp = None
        if size != "mini" and room in ("bedroom", "livingroom"):
            lamp = rng.choice([r for r in receptacles if kind_of(r) in LAMP_STANDS])
        pairs = _candidates(chosen, room, receptacles, size, split)
        if pairs:
            break
    target, destination = rng.choice(pairs)
    count = 2 if chosen == "pick_two" else 1

    # Targets start anywhere but in a receptacle of the destination kind, so that no goal holds
    # at the start; distractors are other kinds, anywhere.
    starts = [r for r in receptacles if kind_of(r) != destination]
    objects = MINI_OBJECTS if size == "mini" else ROOMS[room][1]
    others = [o for o in objects if o != target]
    n_distractors = rng.randint(1, 2) if size != "full" else rng.randint(2, 4)
    placed: dict[str, list[str]] = {r: [] for r in receptacles}
    for i in range(1, count + 1):
        placed[rng.choice(starts)].append(f"{target} {i}")
    for kind in rng.sample(others, n_distractors):
        placed[rng.choice(receptacles)].append(f"{kind} 1")
    if lamp is not None:
        placed[lamp].append(LAMP)
    contents = tuple((r, tuple(sorted(placed[r]))) for r in receptacles)
    return Task(task_type=chosen, goal=goal_text(chosen, target, destination), seed=int(seed),
                split=split, size=size, room=room, receptacles=receptacles, contents=contents,
                target=target, destination=destination, state=TASK_STATES[chosen], count=count,
                lamp=lamp)
