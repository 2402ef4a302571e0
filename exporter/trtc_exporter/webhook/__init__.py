"""TRTC event callbacks (webhooks): verification, parsing, de-duplication, effects, forwarding.

See ``README.md`` beside this file for what lives here and what it may import, and
``docs/webhooks.md`` for the facts (with their sources) and the operator's view.
"""
