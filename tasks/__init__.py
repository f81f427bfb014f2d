"""Built-in tasks, importable as ``mtl.tasks``; importing this package registers them.

Example::

    from mtl.tasks import TextSentiment
"""

from .text_sentiment import TextSentiment

__all__ = ["TextSentiment"]
