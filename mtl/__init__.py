"""mtl: transfer learning on Hugging Face checkpoints for images, short texts and keyword clips.

Typical use::

    from mtl.tasks import TextSentiment
    task = TextSentiment()
    task.fit(train, validation, epochs=3)
    task.evaluate(test)
"""

__version__ = "0.1.0"
