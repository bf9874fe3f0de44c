"""python -m kernelsearch.verify.keeper: an answer keeper process (process.py)."""
from .process import main

main()
