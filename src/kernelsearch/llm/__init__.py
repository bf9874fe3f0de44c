"""Talking to the model: the client, reading its answers, and the prompts (as text files in prompts/)."""
