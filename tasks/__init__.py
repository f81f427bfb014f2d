"""Built-in tasks, importable as ``mtl.tasks``; importing this package registers them.

Example::

    from mtl.tasks import ImageClassification, TextSentiment
"""

from .image_classification import ImageClassification
from .text_sentiment import TextSentiment

__all__ = ["ImageClassification", "TextSentiment"]
