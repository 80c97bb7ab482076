"""The household text environment: one task, played one command at a time.

The interface is ALFWorld's as wrapped by TextWorld (Shridhar et al., ICLR 2021; Côté et al.,
2018): `reset()` gives the first observation, `step(action)` gives (observation, reward, done,
info), and the environment lists the commands it admits in the current state, so that a policy
can be scored on valid actions and a random player can be drawn from them. The reward is
ALFWorld's sparse one: 1.0 on the step that completes the goal, 0.0 on every other step.

An inadmissible command costs a step and changes nothing but the step count, as in ALFWorld,
where it answers "Nothing happens.".
"""

from __future__ import annotations

from types import MappingProxyType

from .text import NOTHING_HAPPENS, contents_description, holding, room_description
from .world import APPLIANCES, CONTAINERS, LAMP, PREPOSITIONS, VERBS, Task, kind_of

DEFAULT_MAX_STEPS = 50

# The manipulation each appliance kind performs: (verb in commands and observations, state given).
_MANIPULATIONS = {appliance: (VERBS[state], state) for state, appliance in APPLIANCES.items()}


class EpisodeFinishedError(RuntimeError):
    """Raised by `HouseholdEnv.step` once the episode has ended (won or out of steps)."""


class HouseholdEnv:
    """A playable instance of a `Task`.

    `step` accepts any string; it is matched against the admissible commands after stripping,
    collapsing whitespace and lowercasing. The admissible commands of a state are computed once
    and cached until the state changes, which keeps `step` at a few microseconds.

    Besides the game interface, the environment exposes what a player has been *shown*
    (`observed_contents`) and the public state (`location`, `holding`, `held_states`,
    `is_open`): the scripted expert plays from these, never from the hidden contents.
    """

    def __init__(self, task: Task, max_steps: int = DEFAULT_MAX_STEPS):
        if not isinstance(task, Task):
            raise TypeError(f"task must be a household.Task, not {type(task).__name__}")
        if int(max_steps) < 1:
            raise ValueError(f"max_steps must be at least 1, not {max_steps}")
        self.task = task
        self.goal = task.goal
        self.max_steps = int(max_steps)
        self._kinds = {r: kind_of(r) for r in task.receptacles}
        self.reset()

    # The game interface.

    def reset(self) -> str:
        """Restores the task's initial state and returns the first observation."""
        self._contents = {r: list(objects) for r, objects in self.task.contents}
        self._open = {r: False for r in self.task.receptacles if self._kinds[r] in CONTAINERS}
        self._states: dict[str, set[str]] = {}
        self._seen: dict[str, tuple[str, ...] | None] = {r: None for r in self.task.receptacles}
        self._lamp_on = False
        self.location: str | None = None
        self.holding: str | None = None
        self.steps = 0
        self.done = False
        self.won = False
        self._cache: dict[str, tuple] | None = None
        self._sorted: list[str] = []
        return f"{room_description(self.task.room, self.task.receptacles)} {self._suffix()}"

    def admissible_commands(self) -> list[str]:
        """The commands the current state admits, sorted (a new list each call)."""
        self._commands()
        return list(self._sorted)

    def step(self, action: str) -> tuple[str, float, bool, dict]:
        """Plays one command; returns (observation, reward, done, info).

        info is {"won": bool, "valid": bool (the command was admissible), "admissible": [...]
        (the commands of the new state)}. Raises EpisodeFinishedError once done, TypeError for
        a non-string action.
        """
        if self.done:
            raise EpisodeFinishedError("the episode is finished; call reset() to play it again")
        if not isinstance(action, str):
            raise TypeError(f"action must be a str, not {type(action).__name__}")
        command = self._commands().get(" ".join(action.split()).lower())
        self.steps += 1
        if command is None:
            observation = f"{NOTHING_HAPPENS} {self._suffix()}"
        else:
            observation = self._apply(command)
            self.won = self._goal_met()
        self.done = self.won or self.steps >= self.max_steps
        info = {"won": self.won, "valid": command is not None,
                "admissible": self.admissible_commands()}
        return observation, (1.0 if self.won else 0.0), self.done, info

    # What a player knows: the expert's inputs.

    @property
    def observed_contents(self):
        """Receptacle -> the objects the player last saw in it (None if never seen), read-only.

        Exact, because only the player moves objects and its own takes and puts are recorded.
        """
        return MappingProxyType(self._seen)

    @property
    def held_states(self) -> frozenset[str]:
        """The states of the held object ("clean", "hot", "cool"); empty if nothing is held."""
        return frozenset(self._states.get(self.holding, ())) if self.holding else frozenset()

    def is_open(self, receptacle: str) -> bool:
        """Whether a receptacle's inside is reachable: surfaces always, containers once opened."""
        return self._open.get(receptacle, True)

    # The rules.

    def _suffix(self) -> str:
        return holding(self.holding, self._states.get(self.holding, ()))

    def _commands(self) -> dict[str, tuple]:
        """Admissible command -> its parsed form; cached until the state changes."""
        if self._cache is not None:
            return self._cache
        loc, held = self.location, self.holding
        commands: dict[str, tuple] = {"look": ("look",), "inventory": ("inventory",)}
        for r in self.task.receptacles:
            if r != loc:
                commands[f"go to {r}"] = ("go", r)
        if loc is not None:
            if loc in self._open:
                if self._open[loc]:
                    commands[f"close {loc}"] = ("close", loc)
                else:
                    commands[f"open {loc}"] = ("open", loc)
            if self.is_open(loc):
                if held is None:
                    for obj in self._contents[loc]:
                        if obj != LAMP:
                            commands[f"take {obj} from {loc}"] = ("take", obj, loc)
                else:
                    commands[f"put {held} {PREPOSITIONS[self._kinds[loc]]} {loc}"] = \
                        ("put", held, loc)
            manipulation = _MANIPULATIONS.get(self._kinds[loc])
            if held is not None and manipulation is not None:
                verb, state = manipulation
                commands[f"{verb} {held} with {loc}"] = ("manipulate", verb, state, held, loc)
            if loc == self.task.lamp:
                commands[f"use {LAMP}"] = ("use",)
        self._cache = commands
        self._sorted = sorted(commands)
        return commands

    def _show(self, r: str) -> str:
        """Describes a reachable receptacle's contents and records them as seen."""
        self._seen[r] = tuple(self._contents[r])
        return contents_description(r, self._contents[r])

    def _status(self, r: str) -> str:
        """A receptacle as seen on arrival: a closed container hides its contents."""
        if r not in self._open:
            return self._show(r)
        if not self._open[r]:
            return f"the {r} is closed ."
        return f"the {r} is open . {self._show(r)}"

    def _apply(self, command: tuple) -> str:
        """Performs an admissible command and returns its observation."""
        op = command[0]
        if op == "look":
            text = room_description(self.task.room, self.task.receptacles)
            if self.location is not None:
                text += f" you are at {self.location} . {self._status(self.location)}"
            return f"{text} {self._suffix()}"
        if op == "inventory":
            return self._suffix()
        self._cache = None
        if op == "go":
            r = command[1]
            self.location = r
            text = f"you arrive at {r} . {self._status(r)}"
        elif op == "open":
            r = command[1]
            self._open[r] = True
            text = f"you open the {r} . the {r} is open . {self._show(r)}"
        elif op == "close":
            r = command[1]
            self._open[r] = False
            text = f"you close the {r} ."
        elif op == "take":
            _, obj, r = command
            self._contents[r].remove(obj)
            self._seen[r] = tuple(self._contents[r])
            self.holding = obj
            text = f"you pick up the {obj} from the {r} ."
        elif op == "put":
            _, obj, r = command
            self._contents[r] = sorted(self._contents[r] + [obj])
            self._seen[r] = tuple(self._contents[r])
            self.holding = None
            text = f"you put the {obj} {PREPOSITIONS[self._kinds[r]]} the {r} ."
        elif op == "manipulate":
            _, verb, state, obj, r = command
            states = self._states.setdefault(obj, set())
            states.add(state)
            # Heating undoes cooling and the other way round; cleanliness stays.
            states.discard({"hot": "cool", "cool": "hot"}.get(state, ""))
            text = f"you {verb} the {obj} using the {r} ."
        else:  # "use"
            self._lamp_on = True
            text = f"you turn on the {LAMP} ."
        return f"{text} {self._suffix()}"

    def _goal_met(self) -> bool:
        """ALFWorld's goal conditions, on object kinds rather than instances.

        look: the desklamp is on, the player stands at it and holds the target kind. Others:
        some receptacle of the destination kind holds `count` targets having the required state
        (two in the *same* receptacle for pick_two, as in ALFWorld's PDDL goal).
        """
        task = self.task
        if task.task_type == "look":
            return (self._lamp_on and self.location == task.lamp and self.holding is not None
                    and kind_of(self.holding) == task.target)
        for r, objects in self._contents.items():
            if self._kinds[r] != task.destination:
                continue
            good = sum(1 for o in objects if kind_of(o) == task.target
                       and (task.state is None or task.state in self._states.get(o, ())))
            if good >= task.count:
                return True
        return False
