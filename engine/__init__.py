"""Jukebox Bridge engine: the Jukebox model (VQ-VAE, priors, sampling), audio I/O, jobs and rendering.

The engine is a library: it opens no sockets and knows nothing of OSC or MIDI (see ``bridge/``).
"""

__version__ = "0.1.0"

LICENCE_NOTE = (
    "The official OpenAI Jukebox weights, and audio made with them, are licensed CC BY-NC 4.0 "
    "(non-commercial use only). Jukebox Bridge's own code is MIT-licensed."
)
