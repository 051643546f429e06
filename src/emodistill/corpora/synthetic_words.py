"""The synthetic corpus's words (data tables): topics, asides, the emotion lexicon, sentence
templates, lexically neutral sentences, and the two functions that draw sentences from them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Topics shared by every emotion, so they carry no label information.
TOPICS = (
    "the new job",
    "this weekend",
    "the test results",
    "the meeting",
    "your message",
    "the trip",
    "the old house",
    "my brother",
    "the whole thing",
    "the news",
    "the dinner",
    "our project",
    "the letter",
    "the interview",
)
#: Fillers shared by every emotion.
ASIDES = ("to be honest", "if you ask me", "I must say", "believe me", "right now")

#: The emotion lexicon: slot -> words, per emotion (``neutral`` = calm, matter-of-fact wording).
LEXICON: dict[str, dict[str, tuple[str, ...]]] = {
    "neutral": {
        "adj": ("fine", "okay", "calm", "indifferent", "unbothered", "alright", "neutral"),
        "intj": ("well", "okay", "right", "so"),
        "excl": (
            "it is what it is",
            "nothing special to report",
            "that seems reasonable",
            "it went about as expected",
            "that is just the usual",
            "it makes no difference to me",
        ),
        "verb": ("don't mind", "have no opinion on", "took note of", "am used to"),
    },
    "happy": {
        "adj": ("happy", "glad", "delighted", "thrilled", "excited", "overjoyed", "cheerful"),
        "intj": ("wow", "yay", "hooray", "oh wonderful"),
        "excl": (
            "this is wonderful",
            "what a lovely surprise",
            "I can't stop smiling",
            "this is the best day ever",
            "this is fantastic news",
            "I am over the moon",
        ),
        "verb": ("love", "adore", "really enjoy", "am so grateful for"),
    },
    "angry": {
        "adj": ("furious", "angry", "annoyed", "outraged", "livid", "fed up", "irritated"),
        "intj": ("damn it", "unbelievable", "come on", "for heaven's sake"),
        "excl": (
            "this is completely unacceptable",
            "how dare you",
            "stop lying to me",
            "this is ridiculous",
            "I have had enough of this",
            "get out of my way",
        ),
        "verb": ("hate", "can't stand", "am sick of", "resent"),
    },
    "sad": {
        "adj": ("sad", "unhappy", "heartbroken", "miserable", "lonely", "depressed", "gloomy"),
        "intj": ("oh no", "sigh", "oh dear", "alas"),
        "excl": (
            "I miss them so much",
            "nothing ever works out",
            "I just feel so empty",
            "it really hurts",
            "everything is falling apart",
            "I can't stop crying",
        ),
        "verb": ("miss", "grieve over", "regret", "mourn"),
    },
}

#: Templates of the emotional sentences, shared by every emotion (slots from :data:`LEXICON`).
EMOTION_TEMPLATES = (
    "I feel {adj} about {topic}.",
    "I am so {adj} right now.",
    "{Intj}, {excl}.",
    "Honestly, {topic} leaves me {adj}.",
    "You know, I {verb} {topic}.",
    "{Excl}, {aside}.",
    "{Intj}, I {verb} {topic}.",
    "{Intj}, I am {adj} about {topic}.",
)

#: Lexically neutral sentences: one pool for every label (plus :data:`_NEUTRAL_PARTS` combinations).
NEUTRAL_SENTENCES = (
    "Please close the window when you leave.",
    "The keys are on the kitchen table.",
    "I need to buy milk and bread.",
    "We usually take the second street on the left.",
    "The report has twelve pages.",
    "She moved to a new apartment in March.",
    "Turn left at the next corner.",
    "The store opens at nine.",
    "Did you put the letters in the box?",
    "He wrote his name on the form.",
    "There are four chairs in the room.",
    "I will call you when I get home.",
    "The car is parked behind the building.",
    "We talked about the schedule for next week.",
    "The meeting is in room three.",
    "Can you tell me what time it is?",
    "The file is on the second shelf.",
    "They painted the fence on Sunday.",
    "I have to check the calendar first.",
    "The coffee machine is next to the door.",
    "Where did you leave the umbrella?",
    "The plants need water twice a week.",
    "My phone number has changed.",
    "We will take the early train.",
)
_NEUTRAL_PARTS = (
    (
        "The train",
        "The bus",
        "My sister",
        "Your brother",
        "The doctor",
        "The package",
        "Our neighbour",
        "The teacher",
        "The manager",
        "The delivery",
    ),
    ("will be here", "came back", "is expected", "was delayed", "got here", "was moved"),
    (
        "at seven",
        "on Tuesday",
        "tomorrow morning",
        "after lunch",
        "next week",
        "around noon",
        "this afternoon",
        "in an hour",
        "last night",
    ),
)


def fill_template(
    template: str, words: dict[str, tuple[str, ...]], rng: np.random.Generator
) -> str:
    """``template`` with its slots filled from ``words`` (one emotion's lexicon entry), the
    shared topics and asides; a capitalised slot name gives a capitalised word."""

    def pick(options: Sequence[str]) -> str:
        return options[int(rng.integers(len(options)))]

    slots = {
        "adj": pick(words["adj"]),
        "intj": pick(words["intj"]),
        "excl": pick(words["excl"]),
        "verb": pick(words["verb"]),
        "topic": pick(TOPICS),
        "aside": pick(ASIDES),
    }
    slots.update({k.capitalize(): v[0].upper() + v[1:] for k, v in list(slots.items())})
    return template.format(**slots)


def neutral_sentence(rng: np.random.Generator) -> str:
    """A lexically neutral sentence (the same pool for every label)."""
    # Half hand-written sentences, half "subject + event + time" combinations (540 of them).
    if rng.random() < 0.5:
        return NEUTRAL_SENTENCES[int(rng.integers(len(NEUTRAL_SENTENCES)))]
    subj, event, time = (part[int(rng.integers(len(part)))] for part in _NEUTRAL_PARTS)
    return f"{subj} {event} {time}."
