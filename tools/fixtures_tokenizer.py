"""Reference fixtures for MoRAgent's tokenizer tests.

`make(out_dir)` writes three small Hugging Face `tokenizer.json` files and a
`reference.json` with the ids / decoded strings that the Python `tokenizers`
library produces for a set of deliberately nasty inputs.  The Swift tokenizer
must reproduce those ids and strings exactly.

Everything is built locally: the training text is generated here from a seeded
random generator, so no hub access is needed and every run writes identical
files.

Layout written (relative to out_dir):

    bpe/tokenizer.json        byte-level BPE with the Qwen2 pipeline (NFC, regex split,
                              ByteLevel without its own regex), 512 tokens incl. specials
    gpt2/tokenizer.json       GPT-2 style byte-level BPE (ByteLevel pre-tokenizer with its
                              built-in regex), 400 trained tokens + 2 added tokens,
                              merges rewritten to the legacy "a b" string form
    wordlevel/tokenizer.json  WordLevel model, WhitespaceSplit, ~200 words, [UNK]
    reference.json            {"tokenizers_version": str,
                               "bpe": [case...], "gpt2": [case...], "wordlevel": [case...]}
                              case = {"text", "ids", "tokens", "decoded"
                                      [, "decoded_skip_special"]}
"""

from __future__ import annotations

import json
import pathlib
import random
import re
import unicodedata

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

# The exact split pattern of Qwen2's tokenizer.json.  Notable for the Swift port:
# digits are split one by one (\p{N} without +), contractions are
# case-insensitive, and `\s+(?!\S)` leaves the last space of a run to be glued to
# the following word.
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

BPE_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
GPT2_SPECIAL = "<|endoftext|>"
WORDLEVEL_SPECIALS = ["[PAD]", "[UNK]", "[BOS]"]

# ---------------------------------------------------------------------------
# Training text
# ---------------------------------------------------------------------------

ROOMS = ["kitchen", "living room", "bathroom", "bedroom", "garage", "hallway",
         "office", "laundry room", "pantry", "dining room"]
FURNITURE = ["fridge", "countertop", "cabinet", "drawer", "sinkbasin", "stoveburner",
             "microwave", "toaster", "coffeemachine", "shelf", "sofa", "armchair",
             "dresser", "bed", "desk", "garbagecan", "safe", "diningtable",
             "sidetable", "toilet", "bathtub", "coffeetable", "tvstand", "laundryhamper"]
ITEMS = ["apple", "mug", "knife", "plate", "bowl", "potato", "tomato", "egg", "bread",
         "lettuce", "spoon", "fork", "cellphone", "book", "pen", "pencil", "keychain",
         "creditcard", "towel", "soapbar", "candle", "vase", "laptop", "pillow",
         "remotecontrol", "cup", "pan", "pot", "saltshaker", "peppershaker", "watch",
         "newspaper", "statue", "cloth", "spraybottle", "toiletpaper", "alarmclock"]
VERBS_ON = ["put", "place", "move"]
ADJ = ["clean", "hot", "cool", "dirty", "small", "large", "red", "blue", "old", "new"]
NAMES = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi"]
THOUGHTS = [
    "I need to find {a} {item} first.",
    "{A} {item} is more likely to appear in {f} ({lo}-{hi}), {g} ({lo2}-{hi2}), or the {h}.",
    "Now I take {a} {item} {n} from the {f} {m}.",
    "I'm not sure where the {item} is, so I'll check the {f} {m}.",
    "It's not here; let's try the {g} {m}.",
    "I don't see it. Maybe it's in the {f}.",
    "They'll want the {item} to be {adj} before it goes on the {f}.",
    "We've checked {n} places already, and there are {m} left.",
    "You'd better open the {f} {m} before looking inside.",
]
GENERIC = [
    "The quick brown fox jumps over the lazy dog.",
    "Please keep the house tidy: wash the dishes, fold the towels and take out the trash!",
    "At {hh}:{mm} the timer rang, so {name} turned off the stove.",
    "{name} paid ${d}.{cc} for {n} eggs and {m} apples on {yyyy}-{mo}-{dd}.",
    "Is the {item} in the {f}? No, it isn't. Is it on the {g}? Yes!",
    "\"Where is my {item}?\" asked {name}. \"Check the {f},\" said {name2}.",
    "Score: {n}/{m} ({p}%) -- not bad, but we can do better...",
    "Step {n}: {action}",
    "Error #{e}: the {f} {m} is locked; try again later.",
    "The room is {p} percent dark; turn on the desklamp {n} (or the floorlamp {m}).",
    "Reward = {d}.{cc}; done = {tf}; steps = {e}.",
]


def _article(word: str) -> str:
    # The ALFWorld-style environments famously always say "a", even before vowels;
    # using both keeps "a" and "an" in the vocabulary.
    return "an" if word[0] in "aeiou" else "a"


def _make_action(rng: random.Random) -> str:
    f, item = rng.choice(FURNITURE), rng.choice(ITEMS)
    n, m = rng.randint(1, 9), rng.randint(1, 6)
    return rng.choice([
        f"go to {f} {m}",
        f"open {f} {m}",
        f"close {f} {m}",
        f"take {item} {n} from {f} {m}",
        f"{rng.choice(VERBS_ON)} {item} {n} in/on {f} {m}",
        f"clean {item} {n} with sinkbasin 1",
        f"heat {item} {n} with microwave 1",
        f"cool {item} {n} with fridge 1",
        f"examine {f} {m}",
        f"use desklamp {n}",
        "look",
        "inventory",
    ])


def _make_observation(rng: random.Random) -> str:
    f = rng.choice(FURNITURE)
    m = rng.randint(1, 6)
    k = rng.randint(0, 4)
    things = [f"a {rng.choice(ITEMS)} {rng.randint(1, 9)}" for _ in range(k)]
    if not things:
        contents = "nothing"
    elif len(things) == 1:
        contents = things[0]
    else:
        contents = ", ".join(things[:-1]) + ", and " + things[-1]
    return rng.choice([
        f"You arrive at {f} {m}. On the {f} {m}, you see {contents}.",
        f"You open the {f} {m}. The {f} {m} is open. In it, you see {contents}.",
        f"The {f} {m} is closed.",
        f"You close the {f} {m}.",
        "Nothing happens.",
        f"You pick up the {rng.choice(ITEMS)} {rng.randint(1, 9)} from the {f} {m}.",
        f"You put the {rng.choice(ITEMS)} {rng.randint(1, 9)} in/on the {f} {m}.",
        f"You are carrying: {contents}.",
    ])


def _make_room(rng: random.Random) -> str:
    room = rng.choice(ROOMS)
    picks = rng.sample(FURNITURE, rng.randint(3, 9))
    parts = [f"a {p} {rng.randint(1, 6)}" for p in picks]
    return (f"-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a {room}. "
            f"Looking quickly around you, you see " + ", ".join(parts[:-1])
            + f", and {parts[-1]}.")


def _fill(template: str, rng: random.Random) -> str:
    item = rng.choice(ITEMS)
    a = _article(item)
    return template.format(
        a=a, A=a.capitalize(), item=item, f=rng.choice(FURNITURE), g=rng.choice(FURNITURE),
        h=rng.choice(FURNITURE), n=rng.randint(1, 12), m=rng.randint(1, 9),
        lo=1, hi=rng.randint(2, 6), lo2=1, hi2=rng.randint(2, 4), adj=rng.choice(ADJ),
        name=rng.choice(NAMES), name2=rng.choice(NAMES), hh=f"{rng.randint(0, 23):02d}",
        mm=f"{rng.randint(0, 59):02d}", d=rng.randint(0, 99), cc=f"{rng.randint(0, 99):02d}",
        yyyy=rng.randint(1990, 2025), mo=f"{rng.randint(1, 12):02d}",
        dd=f"{rng.randint(1, 28):02d}", p=rng.randint(0, 100), e=rng.randint(100, 9999),
        tf=rng.choice(["True", "False"]), action=_make_action(rng),
    )


def training_lines(seed: int = 1234, target_bytes: int = 300_000) -> list[str]:
    """Deterministic household/agent-style English, roughly `target_bytes` long.

    Each "episode" mixes a room description, a task, thoughts, actions (prefixed
    with "> " like the ALFWorld transcripts) and observations, plus generic
    sentences with digits, prices, dates, quotes and punctuation runs.  Lines keep
    their trailing newline so the BPE also learns newline and indentation merges.
    """
    rng = random.Random(seed)
    lines: list[str] = []
    size = 0
    while size < target_bytes:
        episode = [_make_room(rng) + "\n\n"]
        item = rng.choice(ITEMS)
        episode.append(f"Your task is to: put a {rng.choice(ADJ)} {item} in "
                       f"{rng.choice(FURNITURE)}.\n")
        for _ in range(rng.randint(3, 8)):
            if rng.random() < 0.5:
                episode.append("Thought: " + _fill(rng.choice(THOUGHTS), rng) + "\n")
            episode.append("> " + _make_action(rng) + "\n")
            episode.append(_make_observation(rng) + "\n")
            if rng.random() < 0.3:
                episode.append(_fill(rng.choice(GENERIC), rng) + "\n")
            if rng.random() < 0.1:
                # A little JSON-ish tool-call text with indentation.
                episode.append('{\n    "name": "%s",\n    "args": {"target": "%s %d"}\n}\n'
                               % (rng.choice(["go_to", "open", "take"]),
                                  rng.choice(FURNITURE), rng.randint(1, 6)))
        episode.append("\n")
        for line in episode:
            lines.append(line)
            size += len(line.encode("utf-8"))
    return lines


# ---------------------------------------------------------------------------
# Tokenizer construction
# ---------------------------------------------------------------------------

def build_bpe(lines: list[str]) -> Tokenizer:
    """Byte-level BPE with the Qwen2 pipeline, 512 ids in total."""
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
        # use_regex=False: the Split above already did the word splitting; ByteLevel
        # only maps bytes to the printable "byte alphabet" here.
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    # decoders.ByteLevel takes no options (its JSON flags are written as
    # true/true/true and ignored on decode).
    tok.decoder = decoders.ByteLevel()
    # Same flags as Qwen2's published file.  The post-processor only adjusts
    # offsets and adds no tokens, so it never changes ids.
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                              use_regex=False)
    trainer = trainers.BpeTrainer(
        # vocab_size counts everything: the special tokens (placed first, ids 0..2),
        # the 256 byte symbols and the learned merges.  So the total id space is
        # exactly 512, matching the models' vocab_size.
        vocab_size=512,
        min_frequency=2,
        show_progress=False,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in BPE_SPECIALS],
        # Without the full alphabet, bytes that never occur in the training text
        # (e.g. the UTF-8 bytes of CJK or emoji) would be unencodable.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(lines, trainer=trainer)
    return tok


def build_gpt2(lines: list[str]) -> Tokenizer:
    """GPT-2 style BPE: no normalizer, ByteLevel with its own built-in regex."""
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    # GPT-2's published tokenizer.json also carries a ByteLevel post-processor (it
    # only affects offsets, never ids); kept for realism.
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        min_frequency=2,
        show_progress=False,
        special_tokens=[AddedToken(GPT2_SPECIAL, special=True, normalized=False)],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(lines, trainer=trainer)
    # Added after training, so they get ids 400 and 401: ids OUTSIDE the model's
    # vocab, which only the added-tokens table knows about.
    #  * "<tool>": not special (kept by skip_special_tokens), normalized=False
    #    (matched on the raw input text).
    #  * "[CALL]": not special, normalized=True (matched on the normalized text;
    #    there is no normalizer here, so the match itself behaves the same, but the
    #    JSON flag differs and the Swift loader must accept both).
    tok.add_tokens([
        AddedToken("<tool>", special=False, normalized=False),
        AddedToken("[CALL]", special=False, normalized=True),
    ])
    return tok


def _space_punctuation(line: str) -> str:
    # WhitespaceSplit keeps punctuation glued to words ("kitchen."); spacing it out
    # in the training text gives a vocabulary of clean words plus punctuation.
    return re.sub(r"([.,;:!?()\"])", r" \1 ", line)


def build_wordlevel(lines: list[str]) -> Tokenizer:
    """WordLevel over whitespace-split words, ~200 entries incl. 3 specials."""
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # `tokenizers` has no decoder meant for WordLevel (WordPiece would treat "##"
    # specially and its cleanup rewrites " ." to ".").  With decoder = null,
    # Tokenizer.decode simply joins the token strings with a single space, which
    # is exactly the inverse of WhitespaceSplit up to whitespace runs.  The Swift
    # side must implement that fallback.
    tok.decoder = None
    trainer = trainers.WordLevelTrainer(
        vocab_size=200,
        min_frequency=1,
        show_progress=False,
        special_tokens=[AddedToken(t, special=True, normalized=False)
                        for t in WORDLEVEL_SPECIALS],
    )
    tok.train_from_iterator([_space_punctuation(l) for l in lines], trainer=trainer)
    return tok


def _rewrite_merges_legacy(path: pathlib.Path) -> None:
    """Rewrite model.merges from [["a","b"], ...] to the legacy ["a b", ...] form.

    Older tokenizer.json files (GPT-2, early Llama/Qwen exports) store each merge
    as one space-joined string.  Byte-level symbols never contain a real space
    (space is mapped to "Ġ"), so the split is unambiguous.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    merges = data["model"]["merges"]
    legacy = []
    for pair in merges:
        assert isinstance(pair, list) and len(pair) == 2, pair
        assert " " not in pair[0] and " " not in pair[1], pair
        legacy.append(f"{pair[0]} {pair[1]}")
    data["model"]["merges"] = legacy
    _write_json(path, data)


def _write_json(path: pathlib.Path, obj, compact_numbers: bool = False) -> None:
    # ensure_ascii=False keeps the fixtures readable (CJK, emoji); sorted keys are
    # NOT used because tokenizer.json field order is what the library writes.
    text = json.dumps(obj, ensure_ascii=False, indent=2)
    if compact_numbers:
        # Put each list of ids on one line.  Only lists json.dumps broke over
        # lines ("[" + newline) qualify; JSON strings never hold a raw newline,
        # so string contents are never touched.
        text = re.sub(r"\[\n\s*([-0-9,\s]+?)\s*\]",
                      lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]",
                      text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------
# Reference cases
# ---------------------------------------------------------------------------

# One held-out paragraph packing every troublesome feature together, so a single
# case catches interactions (e.g. a space before an emoji, digits after CJK).
HELD_OUT = (
    "Café crème, über-naïve Señor Müller (São Paulo) said: ¡Hola, niño!\n"
    "東京は晴れです。我们明天去北京。Привет, мир! Ёлка стоит.\n"
    "Family: 👩‍👩‍👧 thumbs 👍🏽 party 🎉!\n"
    "Spaces:  two   three    four     five.\tTab\t\tdouble tab\n"
    "\n\n\nWindows line\r\nend\r\n"
    "In 2026 pi ≈ 3.14159; e = 2.71828 (rounded).\n"
    "I'm sure they'll come, but DON'T wait; we've said it's fine, you'd agree.\n"
    "Decomposed: cafe\u0301 vs café.   "
)

COMMON_CASES = [
    HELD_OUT,
    "You are in the kitchen. You see a fridge 1, a countertop 2, and a sinkbasin 1.\n> go to fridge 1",
    "abc<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are a helpful agent.<|im_end|>\n<|im_start|>assistant\n> open drawer 3<|im_end|><|endoftext|>",
    "cafe\u0301 and e\u0301te\u0301",  # decomposed accents: NFC matters for bpe only
    "",
    " ",
    "  ",
    "trailing spaces   ",
    "   leading spaces",
    "a  b   c    d     e",
    "\tindented\t\ttabs\t",
    "line1\nline2\n\n\nline5\r\nline6\r\n\r\n",
    "\n",
    "\n\n \n",
    "In 2026 the value was 3.14159, not 2,718; call 555-0142 at 09:30.",
    "I'm sure they'll come, but DON'T wait. She'S here; we'Ve got it, you'd see, it'LL do.",
    "👩‍👩‍👧👍🏽🎉",
    "日本語のテキストと中文文本",
    "Съешь же ещё этих мягких французских булок",
    "Supercalifragilisticexpialidocious",
    '{"name": "open", "args": {"target": "drawer 3"}}',
    "Wait... what?!? (yes) [no] {maybe} -- ok;;",
    "nbsp\u00a0thin\u2009ideo\u3000end",  # Unicode spaces: \s in the split regexes
]

EXTRA_CASES = {
    "bpe": [
        "x<|endoftext|>y",
        "<|im_start|><|im_end|>",
        "<tool>not special here</tool>",
    ],
    "gpt2": [
        "<tool>go to fridge 1</tool>",
        "[CALL]open(drawer 3)[CALL]",
        " <tool> spaced [CALL] ",
        "x<|endoftext|>y",
        "<|endoftext|>",
    ],
    "wordlevel": [
        "You see a zebra 7 and a spaceship .",  # zebra / spaceship / 7 -> [UNK]
        "[BOS] You are in the kitchen . [PAD] [PAD]",
        "abc[BOS]def",
        "go   to\tfridge\n1",
        "go to [UNK] now",  # a literal "[UNK]" is a special token too
        # Mostly in-vocabulary, punctuation spaced out like the training text.
        "> go to fridge 1\nYou open the fridge 1 . The fridge 1 is open . "
        "In it , you see a apple 2 , and a egg 1 .",
    ],
}


def _cases_for(name: str, tok: Tokenizer) -> list[dict]:
    special_ids = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}
    out = []
    for text in COMMON_CASES + EXTRA_CASES[name]:
        enc = tok.encode(text, add_special_tokens=False)
        case = {
            "text": text,
            "ids": enc.ids,
            # The token strings are not required by the Swift tests but make a
            # mismatch far easier to diagnose.
            "tokens": enc.tokens,
            "decoded": tok.decode(enc.ids, skip_special_tokens=False),
        }
        # Only where it can differ: cases whose ids contain a special token.
        if special_ids.intersection(enc.ids):
            case["decoded_skip_special"] = tok.decode(enc.ids, skip_special_tokens=True)
        out.append(case)
    assert any("decoded_skip_special" in c for c in out), name
    return out


def make(out_dir: pathlib.Path) -> None:
    out_dir = pathlib.Path(out_dir)
    lines = training_lines()
    corpus = "".join(lines)
    # The held-out text must really be unseen, including its exotic scripts.
    assert HELD_OUT not in corpus
    assert not any(ord(c) > 0x7F for c in corpus), "training text is meant to be ASCII"
    print(f"[tokenizer] training text: {len(corpus.encode())} bytes, {len(lines)} lines")

    toks = {
        "bpe": build_bpe(lines),
        "gpt2": build_gpt2(lines),
        "wordlevel": build_wordlevel(lines),
    }

    # Sanity checks on the id space before anything is written.
    bpe = toks["bpe"]
    assert bpe.get_vocab_size(with_added_tokens=True) == 512, bpe.get_vocab_size()
    for i, t in enumerate(BPE_SPECIALS):
        assert bpe.token_to_id(t) == i, (t, bpe.token_to_id(t))
    assert toks["gpt2"].get_vocab_size(with_added_tokens=False) == 400
    assert toks["gpt2"].get_vocab_size(with_added_tokens=True) == 402

    for name, tok in toks.items():
        path = out_dir / name / "tokenizer.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Round-trip through the library's pretty JSON so the file is exactly
        # what `tokenizers` writes (then re-indented identically by json.dumps).
        _write_json(path, json.loads(tok.to_str(pretty=True)))
        if name == "gpt2":
            _rewrite_merges_legacy(path)
        # Reload from disk and use THAT for the reference: this proves the written
        # file (including the legacy merges) is loadable and equivalent.
        reloaded = Tokenizer.from_file(str(path))
        for text in COMMON_CASES + EXTRA_CASES[name]:
            assert reloaded.encode(text, add_special_tokens=False).ids == \
                tok.encode(text, add_special_tokens=False).ids, (name, text)
        toks[name] = reloaded
        print(f"[tokenizer] {name}: vocab {reloaded.get_vocab_size(with_added_tokens=False)}"
              f" (+added -> {reloaded.get_vocab_size(with_added_tokens=True)}), added: "
              + ", ".join(f"{i}={t.content!r}{'*' if t.special else ''}"
                          for i, t in sorted(reloaded.get_added_tokens_decoder().items())))

    reference = {"tokenizers_version": tokenizers.__version__}
    for name, tok in toks.items():
        reference[name] = _cases_for(name, tok)
    _write_json(out_dir / "reference.json", reference, compact_numbers=True)
    # The compaction must not change the content.
    assert json.loads((out_dir / "reference.json").read_text(encoding="utf-8")) == reference

    # A few spot checks that the cases exercise what they claim to.
    nfc_case = next(c for c in reference["bpe"] if c["text"].startswith("cafe\u0301 and"))
    assert nfc_case["decoded"] == unicodedata.normalize("NFC", nfc_case["text"])
    unk = toks["wordlevel"].token_to_id("[UNK]")
    assert unk in next(c for c in reference["wordlevel"] if "zebra" in c["text"])["ids"]


if __name__ == "__main__":
    import sys
    make(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tokfix"))
