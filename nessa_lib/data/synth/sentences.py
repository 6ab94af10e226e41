"""A small built-in English grammar for text-independent synthetic speech.

Sentences come from a dozen templates over a vocabulary of a few hundred words (names, places, nouns,
adjectives, verbs, times, numbers). Everything is drawn from the ``rng`` passed in, so the text of a corpus is
reproducible. At eSpeak's usual rates a sentence of 9-17 words lasts about 3-6 s.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sentence", "sentences", "VOCABULARY"]

_NAMES = """Alice Bob Carol David Emma Frank Grace Henry Irene Jack Karen Liam Maria Nathan Olivia Peter Quinn
Rachel Samuel Tina Victor Wendy Xavier Yvonne Zack Martha Oscar Sophie Daniel Laura""".split()
_PLACES = """the station,the market,the library,the harbour,the old bridge,the museum,the bakery,the garden,
the hospital,the airport,the school,the river,the mountain,the village square,the office,the kitchen,the beach,
the forest,the stadium,the corner shop,the hotel,the farm,the castle,the cinema""".replace("\n", "").split(",")
_NOUNS = """book letter window bicycle painting umbrella candle basket ticket camera blanket bottle jacket
guitar ladder mirror pencil pillow rope saddle table teapot wallet whistle engine parcel lantern notebook
kettle hammer key map coin clock radio sandwich apple orange carrot onion potato tomato flower tree stone
feather shell boat train truck horse rabbit dog cat bird fish garden song story picture message gift
newspaper ribbon button bucket drawer fence gate shovel chair carpet""".split()
_ADJS = """old new small large bright dark quiet noisy heavy light warm cold clean dusty broken shiny
yellow green red blue purple silver golden wooden plastic strange simple famous careful lucky gentle
ancient modern fragile narrow wide tiny enormous round square soft rough sweet bitter fresh empty full
crowded lonely""".split()
_VERBS_PAST = """found carried painted bought sold borrowed repaired opened closed cleaned dropped lifted
pushed pulled washed moved hid noticed described ordered packed counted measured checked delivered
collected wrapped dried fixed lost""".split()
_VERBS_BASE = """find carry paint buy sell borrow repair open close clean drop lift push pull wash move hide
notice describe order pack count measure check deliver collect wrap dry fix""".split()
_VERBS_ING = """walking reading cooking singing waiting running working talking travelling writing
listening painting sleeping drawing swimming dancing studying shopping""".split()
_ADVS = """slowly quickly quietly carefully happily suddenly gently loudly easily rarely nearly calmly
politely proudly safely""".split()
_TIMES = """this morning,last night,on Monday,on Tuesday,on Wednesday,on Thursday,on Friday,on Saturday,
on Sunday,yesterday afternoon,early today,late in the evening,after lunch,before dinner,every weekend,
at noon,in the spring,during the winter,next summer,in October,after the storm,before sunrise""".replace(
    "\n", "").split(",")
_NUMBERS = """two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty
hundred""".split()
_CONJ = ["because", "although", "while", "after", "before", "when", "since", "until"]
_SUBJ = ["I", "we", "they", "you", "she", "he", "my sister", "our neighbour", "the teacher", "the driver",
         "the children", "my friend", "the farmer", "the doctor", "the old man", "the young woman"]

#: Every word the grammar can produce (lower-case, sorted).
VOCABULARY = sorted({w.lower() for group in (_NAMES, _NOUNS, _ADJS, _VERBS_PAST, _VERBS_BASE, _VERBS_ING,
                                            _ADVS, _NUMBERS, _CONJ) for w in group}
                    | {w.lower() for p in _PLACES + _TIMES + _SUBJ for w in p.split()})


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _np(rng, plural=False):
    adj = _pick(rng, _ADJS) + " " if rng.random() < 0.7 else ""
    if rng.random() < 0.3 and adj:
        adj = _pick(rng, _ADJS) + " " + adj
    noun = _pick(rng, _NOUNS)
    if plural:
        return f"{_pick(rng, _NUMBERS)} {adj}{noun}s"
    det = _pick(rng, ["the", "a", "my", "her", "his", "our", "their", "that"])
    if det == "a" and (adj or noun)[0] in "aeiou":
        det = "an"
    return f"{det} {adj}{noun}"


def _clause(rng):
    subj = _pick(rng, _SUBJ + _NAMES)
    obj = _np(rng, plural=rng.random() < 0.25)
    return f"{subj} {_pick(rng, _VERBS_PAST)} {obj}"


_TEMPLATES = [
    lambda r: f"{_pick(r, _NAMES)} {_pick(r, _VERBS_PAST)} {_np(r)} near {_pick(r, _PLACES)} {_pick(r, _TIMES)}.",
    lambda r: f"{_pick(r, _TIMES).capitalize()}, {_clause(r)} and took it to {_pick(r, _PLACES)}.",
    lambda r: f"Could you {_pick(r, _VERBS_BASE)} {_np(r)} before we leave for {_pick(r, _PLACES)}?",
    lambda r: f"{_pick(r, _NAMES)} was {_pick(r, _VERBS_ING)} {_pick(r, _ADVS)} "
              f"{_pick(r, _CONJ)} {_clause(r)}.",
    lambda r: f"There were {_np(r, plural=True)} on the table in {_pick(r, _PLACES)}.",
    lambda r: f"I think {_clause(r)} {_pick(r, _TIMES)}, but nobody saw it.",
    lambda r: f"{_pick(r, _CONJ).capitalize()} {_clause(r)}, {_pick(r, _NAMES)} "
              f"{_pick(r, _ADVS)} {_pick(r, _VERBS_PAST)} {_np(r)}.",
    lambda r: f"Please {_pick(r, _VERBS_BASE)} {_np(r)} and put it next to {_np(r)}.",
    lambda r: f"Why did {_pick(r, _NAMES)} {_pick(r, _VERBS_BASE)} {_np(r)} at {_pick(r, _PLACES)}?",
    lambda r: f"{_pick(r, _NAMES)} and {_pick(r, _NAMES)} met at {_pick(r, _PLACES)} {_pick(r, _TIMES)}.",
    lambda r: f"The {_pick(r, _ADJS)} {_pick(r, _NOUNS)} is {_pick(r, _ADVS)} {_pick(r, _VERBS_ING)} "
              f"behind {_np(r)}.",
    lambda r: f"We need {_np(r, plural=True)} and {_np(r)} for {_pick(r, _PLACES)} {_pick(r, _TIMES)}.",
    lambda r: f"{_pick(r, _NAMES)} said that {_clause(r)} {_pick(r, _ADVS)}.",
    lambda r: f"It costs {_pick(r, _NUMBERS)} pounds to {_pick(r, _VERBS_BASE)} {_np(r)} in {_pick(r, _PLACES)}.",
]


def sentence(rng: np.random.Generator, min_words: int = 9, max_words: int = 17) -> str:
    """One random sentence of ``min_words`` to ``max_words`` words (short ones are joined with another).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of all randomness.
    min_words, max_words : int
        Word-count bounds (about 3-6 s of speech at 170 words per minute for the defaults).

    Examples
    --------
    >>> s = sentence(np.random.default_rng(0))
    >>> s == sentence(np.random.default_rng(0)), 9 <= len(s.split()) <= 17
    (True, True)
    """
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    for _ in range(200):
        s = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))](rng)
        while len(s.split()) < min_words:
            s = s + " " + _TEMPLATES[int(rng.integers(len(_TEMPLATES)))](rng)
        if len(s.split()) <= max_words:
            return s[0].upper() + s[1:]
    # very tight bounds: truncate the last draw
    return " ".join(s.split()[:max_words]).rstrip(",.?") + "."


def sentences(rng: np.random.Generator, n: int, **kwargs) -> list[str]:
    """``n`` random sentences (see :func:`sentence`).

    Examples
    --------
    >>> len(sentences(np.random.default_rng(1), 3))
    3
    """
    return [sentence(rng, **kwargs) for _ in range(int(n))]
