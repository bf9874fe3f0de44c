"""python -m kernelsearch.verify.worker: a verifier worker process (process.py)."""
from .process import main

main()
