"""Built-in tasks, importable as ``mtl.tasks``; importing this package registers them.

Example::

    from mtl.tasks import ImageClassification, KeywordSpotting, TextSentiment
"""

from .image_classification import ImageClassification
from .keyword_spotting import KeywordSpotting
from .text_sentiment import TextSentiment

__all__ = ["ImageClassification", "KeywordSpotting", "TextSentiment"]
