"""Checks made before any of the candidate's code runs: the rules its source must follow (static_checks.py, read by
scope with symtable in scopes.py; modules reached through attributes in reach_checks.py; C++ handed to load_inline,
as text, in cpp_checks.py), and what its text says about precision (precision_notes.py). Fast and readable, the
first line of the verifier: the walls that hold when a rule is dodged are in containment/."""
