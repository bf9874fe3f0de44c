"""A candidate that first tries to switch the audit hook off from Python, then escapes. tests/verify/containment/test_audit.py runs
TAMPER under the hook: the module attributes it rewrites (the rules' globals, audit.refusals) and the functions it
replaces (os.readlink, os.lstat, posixpath.realpath, builtins.len/isinstance/any, sys._getframe) are not what the
installed hook uses, so both escapes are refused and none of the replacements is ever called. REACH lists what
install() leaves within a candidate's reach: none of it leads to the hook's state."""
import builtins
import os
import posixpath
import sys

MARKERS = os.environ["KS_TEST_MARKERS"]
CALLS = []  # every call of a replacement lands here


def spy(original):
    def replacement(*args, **kwargs):
        CALLS.append(getattr(original, "__name__", "?"))
        return original(*args, **kwargs)
    return replacement


def switch_off_then_escape():
    rules = sys.modules["kernelsearch.verify.containment.audit_rules"]
    processes = sys.modules["kernelsearch.verify.containment.audit_processes"]
    audit = sys.modules["kernelsearch.verify.containment.audit"]
    for module in (rules, processes):
        module.WORKER_DIR, module.READ_ROOTS, module.EXEC_ROOTS = "", ("/",), ("/",)
    rules.WATCHED, rules.ALWAYS_REFUSED, rules.LOG_READS = frozenset(), {}, True
    rules.REFUSED.clear()
    rules.judge = rules.hook = lambda *args: None
    audit.refusals = lambda: []
    patched = [(os, "readlink"), (os, "lstat"), (os, "getcwd"), (posixpath, "realpath"), (builtins, "len"),
               (builtins, "isinstance"), (builtins, "any"), (sys, "_getframe")]
    originals = [getattr(owner, name) for owner, name in patched]
    for (owner, name), original in zip(patched, originals):
        setattr(owner, name, spy(original))
    outcomes = []
    try:
        for escape in (lambda: os.system(f"touch {MARKERS}/after_tampering"), lambda: open("/etc/passwd").read()):
            try:
                escape()
                outcomes.append("done")
            except PermissionError as e:
                outcomes.append(str(e))
    finally:
        for (owner, name), original in zip(patched, originals):
            setattr(owner, name, original)
    return {"outcomes": outcomes, "replacements_called": list(CALLS)}


def what_install_left_within_reach():
    """Every object install() leaves reachable: none leads to the hook's sealed globals (its policy, its record)."""
    import subprocess
    audit = sys.modules["kernelsearch.verify.containment.audit"]
    stand_in = subprocess._fork_exec
    return {
        "fork_exec replaced everywhere": sys.modules["_posixsubprocess"].fork_exec is stand_in,
        "stand-in globals": sorted(stand_in.__globals__) + sorted(stand_in.__globals__["__builtins__"]),
        "stand-in holds": sorted(type(c.cell_contents).__name__ for c in stand_in.__closure__),
        "reader holds": sorted(type(c.cell_contents).__name__ for c in audit.refusals.__closure__),
    }


TAMPER = {"switch_off_then_escape": switch_off_then_escape}
REACH = {"what_install_left_within_reach": what_install_left_within_reach}
