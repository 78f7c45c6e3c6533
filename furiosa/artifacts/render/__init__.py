"""Renderers of a model's facts (:mod:`furiosa.artifacts.facts`): ``text`` (what ``show`` prints),
``markdown`` (the model card), ``plot`` (the card's PNG) and ``cards`` (every card of a catalog)."""
