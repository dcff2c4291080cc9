"""Sentiment analysers and keyword intent rules for inbound text that arrived without them.

An analyser is any class with `analyse(text) -> Analysis`; the setting
SENTIMENT_ANALYZER names the one in use. The default scores English with VADER
and leaves every other language unscored (an honest "unknown", not a guess);
the language is detected, never assumed.
"""

from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class Analysis:
    sentiment: float | None
    language: str | None


class VaderEnglish:
    """VADER compound score (-1…1) for text detected as English; None for anything else."""

    def __init__(self):
        from langdetect import DetectorFactory
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        # langdetect is random unless seeded: the same text must always get the same answer.
        DetectorFactory.seed = 0
        self.vader = SentimentIntensityAnalyzer()

    def language(self, text: str) -> str | None:
        from langdetect import LangDetectException, detect

        try:
            return detect(text)
        except LangDetectException:
            return None

    def analyse(self, text: str) -> Analysis:
        language = self.language(text)
        if language != "en":
            return Analysis(None, language)
        return Analysis(round(self.vader.polarity_scores(text)["compound"], 4), language)


@lru_cache(maxsize=4)
def _analyser(path):
    return import_string(path)()


def analyser_get():
    return _analyser(settings.SENTIMENT_ANALYZER)


def intent_match(text: str, rules) -> str:
    """The intent of the first rule (by priority) with a keyword in the text; "" when none."""
    folded = text.casefold()
    for intent, keywords in rules:
        if any(keyword in folded for keyword in keywords):
            return intent
    return ""
