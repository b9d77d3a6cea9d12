"""Jukebox Bridge: the command line above the engine and the DAW bridge."""
