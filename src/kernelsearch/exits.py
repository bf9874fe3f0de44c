"""What each command's exit status means: the codes the commands return and the words their --help shows."""
from __future__ import annotations

EXIT_CORRECT, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
EXIT_CODES = {  # what each command's --help says about its exit status
    "verify": "0 correct; 1 any other verdict; 2 bad usage, or the problem's limit (problem_error)",
    "attention": "0 every shape verified correct; 1 otherwise; 2 bad usage (a bad spec)",
    "solve": "0 a correct kernel was found; 1 none; 2 bad usage, or the model endpoint failed",
    "bench": "0 a correct kernel for at least one problem; 1 none; 2 bad usage, or the model endpoint failed",
    "report": "0 written; 2 bad usage (no run there, a damaged run)",
    "retime": "0 a correct kernel was re-timed and kept; 1 none passed; 2 bad usage (no run there, a damaged run, "
              "no GPU)",
    "mcp": "0 the client closed the session; 2 bad usage (the mcp extra is not installed)",
}
STOPPED = "130/143/129 stopped by SIGINT/SIGTERM/SIGHUP (its verifier workers stop too)"


def how_stopped(e: BaseException) -> tuple[str, int]:
    """Ctrl-C (KeyboardInterrupt) or SIGTERM/SIGHUP (Stopped): what to say, and the conventional exit code."""
    name = getattr(e, "signal_name", None)
    return (f"stopped by {name}", e.code) if name else ("interrupted", 130)
