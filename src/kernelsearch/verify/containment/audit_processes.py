"""Which processes the worker may start once the audit hook is installed: the toolchain that Triton and
load_inline run, with arguments that cannot make it run anything else or write outside the worker's directory.

Triton (3.6 on the GPU machine, 3.9 here) runs `ptxas --version`, `ptxas ... -o <cache>` (make_cubin),
`<cc> src.c -O3 -shared -fPIC -o <cache>.so -I.. -L.. -l..` (the launcher; cc is $CC, else gcc, else clang) and
`/sbin/ldconfig -p` (where libcuda is); Inductor may ask `nvidia-smi -L` what the GPU is. load_inline runs
`ninja --version`, `<c++> -v`/`--version`/`-dumpversion` (compiler checks), `nvcc --version`, and `ninja -v -j N` in
its build directory; ninja then runs the commands of the build.ninja that torch wrote ($cxx, $nvcc) through /bin/sh.
The CPU compile check runs g++ and nvcc itself.
nvcc's own helpers (cicc, ptxas, fatbinary, nvlink, cudafe++) and gcc's (cc1, as, ld) are started by nvcc and
gcc, not by Python: no audit hook sees them (the OS sandbox contains them).

Everything here runs inside the audit hook, sealed by audit.install: no module attribute is looked up at run time
(os.lstat etc. are bound below, at import, before any candidate exists), and no candidate object is ever called."""
from __future__ import annotations

import os
import re

from .audit_values import as_environment, as_text, as_texts, read_file_text, real_path, within

_getcwd, _access, _X_OK = os.getcwd, os.access, os.X_OK

# Programs by the name they are started as. cc/gcc/g++/clang may carry a target prefix or a version suffix.
COMPILER = re.compile(r"(?:(?:x86_64|aarch64|powerpc64le)-linux-gnu-)?(?:gcc|g\+\+|cc|c\+\+|clang|clang\+\+)"
                      r"(?:-\d+(?:\.\d+)*)?|nvcc|ptxas(?:-\w+)?|cicc|fatbinary|nvlink|cudafe\+\+")
# Flags that make a compiler run another program, read its arguments from a file, or write where it is told
# (-o and friends are checked as outputs instead). None of them is used by Triton, torch or the compile check.
DENIED_FLAG = re.compile(
    r"-wrapper|-B.*|--?specs.*|-fplugin.*|-iplugindir.*|--?ld-path.*|-fuse-ld=.*/.*|-ccbin.*|--compiler-bindir.*"
    r"|--options-file.*|-optf.*|--?run|--?run-args.*|@.*|-Wa,.*|-Xassembler|-Wp,.*|-Xpreprocessor|-fdump-.*"
    r"|-save-temps=.*|-fcallgraph-info.*|-fprofile-.*|-fauto-profile.*|-dumpbase.*|-aux-info.*|--dryrun")
# Pieces of -Wl,a,b / -Xlinker that write files or load plugins.
DENIED_LINKER_PIECE = re.compile(r"-Map.*|--Map.*|-o|--output.*|-plugin.*|--plugin.*|--dependency-file.*")
OUTPUT_FLAGS = frozenset({"-o", "-MF", "--dependency-output", "--output-file", "-odir", "--output-directory",
                          "--keep-dir", "-keep-dir", "-dumpdir"})
JOINED_OUTPUT = re.compile(r"(?:-o|-MF|--output-file=|--output-directory=|--keep-dir=)(.+)")
# nvcc options whose value is a comma-separated list of another tool's flags.
PASS_THROUGH = frozenset({"-Xcompiler", "--compiler-options", "-Xlinker", "--linker-options", "-Xptxas",
                          "--ptxas-options", "-Xnvlink", "--nvlink-options", "-Xarchive", "--archive-options",
                          "-Xcudafe", "-Xfatbin"})
PATH_IN_FLAG = re.compile(r"-[A-Za-z]+:?(/.*)")
NINJA_ARGS = re.compile(r"-v|--version|-j|\d+")
# nvidia-smi only as a query: torch.compile's Inductor asks it what the GPU is (seen on the H100, 2026-12-07: L3
# 26_ShuffleNet's baseline, with torch 2.11, in a call that the worker's early asking did not cover) and whether
# GPUs share NVLink (`topo -m`). Flags that change a GPU's state (-r, -pm, -lgc, -ac, ...) are not in this list.
NVIDIA_SMI_QUERY = re.compile(r"-L|--list-gpus|-q|--query|topo|-m|--query-gpu=[\w.,]+|--format=[\w, ]+|-i|\d+")
# Variables that change which program a toolchain process runs, what it loads, or where it writes. They must keep
# the value they had when the hook was installed, in os.environ (os.putenv is refused) and in a child's env.
GUARDED_ENV = re.compile(r"LD_\w+|GCC_EXEC_PREFIX|COMPILER_PATH|LIBRARY_PATH|DEPENDENCIES_OUTPUT|SUNPRO_\w+|TMPDIR|"
                         r"TMP|TEMP|CC|CXX|CCACHE_\w+|SCCACHE_\w+|NVCC_\w+|BASH_ENV|ENV|PATH|HOME|PYTORCH_NVCC|"
                         r"TORCH_NO_COMPILER_WRAPPER|TRITON_PTXAS\w*|MAKEFLAGS|PYTHON\w*")
SHELL_SYNTAX = frozenset(";|&<>()`$\n")
CONTINUATION = re.compile(r"\$\n[ \t]*")  # ninja's "$" at the end of a line
VARIABLE_NAME = re.compile(r"[A-Za-z0-9_-]+")
TOP_LEVEL_NAME = re.compile(r"[\w.-]+")

# Filled in by audit.install in the sealed copy of this module (real paths, no trailing slash).
WORKER_DIR = ""
READ_ROOTS: tuple = ()
EXEC_ROOTS: tuple = ()
ENV_AT_INSTALL: dict = {}  # GUARDED_ENV's variables as they were


def process_refusal(program, argv, cwd, env) -> str | None:
    """Why starting `program` with `argv` (argv[0] included) is refused, or None."""
    program, args = as_text(program), as_texts(argv)
    if program is None or args is None:
        return "a program or argument that is not a plain string"
    variables = as_environment(env)
    if variables is None:
        return "an environment that is not a plain dict"
    why = env_refusal(variables)
    if why:
        return why
    directory = real_path(_getcwd() if cwd is None else cwd, _getcwd())
    if directory is None or (cwd is not None and not within(directory, WORKER_DIR)):
        return f"a working directory outside the worker's: {as_text(cwd)!r}"
    return program_refusal(program, args[1:], variables.get("PATH", ENV_AT_INSTALL.get("PATH", "")), directory)


def program_refusal(program: str, args: list, search_path: str, cwd: str) -> str | None:
    name = program.rsplit("/", 1)[-1]
    kind = family(name)
    if kind is None:
        return f"{name!r} is not a toolchain program (a compiler, ptxas, ninja, ldconfig or an nvidia-smi query)"
    path = locate(program, search_path, cwd)
    if path is not None:  # else exec finds nothing to run
        if not any(within(path, root) for root in EXEC_ROOTS) or within(path, WORKER_DIR):
            return f"{program!r} lives outside the toolchain's directories ({path})"
        if family(path.rsplit("/", 1)[-1]) != kind:  # a link named gcc to /bin/sh, or ccache (reads HOME's config)
            return f"{program!r} is {path}, not a {kind}"
    if kind == "ldconfig":
        return None if args == ["-p"] else f"ldconfig {' '.join(args)!r} (only -p is allowed)"
    if kind == "ninja":
        return ninja_refusal(args, cwd)
    if kind == "nvidia-smi":
        changes = [arg for arg in args if not NVIDIA_SMI_QUERY.fullmatch(arg)]
        return f"nvidia-smi {' '.join(changes)!r} (only queries are allowed)" if changes else None
    return compiler_args_refusal(args, cwd)


def family(name: str) -> str | None:
    if name in ("ldconfig", "ldconfig.real"):
        return "ldconfig"
    if name in ("ninja", "nvidia-smi"):
        return name
    return "compiler" if COMPILER.fullmatch(name) else None


def locate(program: str, search_path: str, cwd: str) -> str | None:
    """The real path of what exec would run, or None where nothing would run."""
    if "/" in program:
        return real_path(program, cwd)
    for directory in search_path.split(":"):
        candidate = (directory or ".") + "/" + program
        if _access(candidate, _X_OK):
            return real_path(candidate, cwd)
    return None


def compiler_args_refusal(args: list, cwd: str) -> str | None:
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-ccbin", "--compiler-bindir") and i + 1 < len(args) and args[i + 1] == ENV_AT_INSTALL.get("CC"):
            i += 2  # load_inline passes nvcc `-ccbin $CC` when CC is set (CC itself cannot change: GUARDED_ENV)
            continue
        if arg in OUTPUT_FLAGS or arg in PASS_THROUGH:
            value = args[i + 1] if i + 1 < len(args) else ""
            why = output_refusal(value, cwd) if arg in OUTPUT_FLAGS else pieces_refusal(value.split(","), cwd)
            i += 2
        else:
            joined = JOINED_OUTPUT.fullmatch(arg)
            flag, _, value = arg.partition("=")
            if joined and not arg.startswith("-odir"):
                why = output_refusal(joined.group(1), cwd)
            elif flag in PASS_THROUGH:
                why = pieces_refusal(value.split(","), cwd)
            elif arg.startswith("-Wl,"):
                why = pieces_refusal(arg[4:].split(","), cwd, linker=True)
            else:
                why = flag_refusal(arg)
            i += 1
        if why:
            return why
    return None


def pieces_refusal(pieces: list, cwd: str, linker: bool = False) -> str | None:
    for piece in pieces:
        if piece in ("-o",) or DENIED_LINKER_PIECE.fullmatch(piece) or (not linker and DENIED_FLAG.fullmatch(piece)):
            return f"the flag {piece!r} (passed through to another tool)"
        why = flag_refusal(piece) if not linker else paths_refusal(piece)
        if why:
            return why
    return None


def flag_refusal(arg: str) -> str | None:
    if DENIED_FLAG.fullmatch(arg):
        return f"the flag {arg!r} (runs another program, reads arguments from a file, or writes elsewhere)"
    return paths_refusal(arg)


def paths_refusal(arg: str) -> str | None:
    """Absolute paths inside a flag (-I/x, -L/x, /x, -DX=/x) must be readable under the policy."""
    for piece in arg.replace("=", ",").split(","):
        match = PATH_IN_FLAG.fullmatch(piece)
        path = piece if piece.startswith("/") else match.group(1) if match else None
        if path is not None and not any(within(real_path(path, "/"), root) for root in READ_ROOTS):
            return f"the path {path!r} is outside what the worker may read"
    return None


def output_refusal(target: str, cwd: str) -> str | None:
    real = real_path(target, cwd)
    if real == "/dev/null" or within(real, WORKER_DIR):
        return None
    return f"an output outside the worker's directory: {target!r}"


def env_refusal(variables: dict) -> str | None:
    for name, value in variables.items():
        if GUARDED_ENV.fullmatch(name) and value != ENV_AT_INSTALL.get(name):
            return f"the environment variable {name} changed for a child process"
    return None


# ---- ninja ----------------------------------------------------------------------------------------------------
def ninja_refusal(args: list, cwd: str) -> str | None:
    """ninja runs each rule's command through /bin/sh: every command must be a toolchain program with allowed
    flags and no shell syntax (torch's extra_cflags land in the build file unquoted)."""
    if not all(NINJA_ARGS.fullmatch(a) for a in args):
        return f"ninja {' '.join(args)!r} (only -v, -j N and --version are allowed)"
    if "--version" in args:
        return None
    if not within(cwd, WORKER_DIR):
        return f"ninja in {cwd} (outside the worker's directory)"
    text = read_file_text(cwd + "/build.ninja")
    if text is None:
        return None  # ninja fails on its own
    variables, commands, edges = {"in": "IN", "out": "OUT"}, [], []
    section = ""
    for line in CONTINUATION.sub("", text).split("\n"):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] in " \t":
            key, _, value = stripped.partition("=")
            key = key.strip()
            if section != "rule" or key not in ("command", "depfile", "deps", "description"):
                return f"ninja build file: {key!r} in a {section or 'top-level'} block"
            if key == "command":
                commands.append(expand(value.strip(), variables))
            continue
        word = stripped.split(" ", 1)[0]
        if word == "rule":
            section = "rule"
        elif word == "build":
            section = "build"
            edges.append(stripped[6:])
        elif word == "default":
            section = ""
        elif "=" in stripped and TOP_LEVEL_NAME.fullmatch(stripped.partition("=")[0].strip()):
            section = ""
            name, _, value = stripped.partition("=")
            variables[name.strip()] = expand(value.strip(), variables)
        else:
            return f"ninja build file: {word!r} is not allowed"
    for command in commands:
        why = command_refusal(command, cwd)
        if why:
            return f"ninja build file: {why}"
    for edge in edges:  # outputs in the worker's directory
        outputs = expand(edge, variables).split(":", 1)[0].split()
        for output in outputs:
            why = output_refusal(output, cwd)
            if why:
                return f"ninja build file: {why}"
    return None


def expand(value: str, variables: dict) -> str:
    """ninja's $-escapes and $var / ${var} (unknown variables are empty, as in ninja)."""
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        nxt = value[i + 1:i + 2]
        if nxt in ("$", " ", ":"):
            out.append(nxt)
            i += 2
        elif nxt == "{":
            end = value.find("}", i)
            out.append(variables.get(value[i + 2:end], "") if end > 0 else "")
            i = end + 1 if end > 0 else len(value)
        else:
            match = VARIABLE_NAME.match(value, i + 1)
            name = match.group(0) if match else ""
            out.append(variables.get(name, ""))
            i += 1 + len(name)
    return "".join(out)


def command_refusal(command: str, cwd: str) -> str | None:
    words = shell_words(command)
    if words is None:
        return f"shell syntax in a command: {command[:200]!r}"
    if not words:
        return "an empty command"
    return program_refusal(words[0], words[1:], ENV_AT_INSTALL.get("PATH", ""), cwd)


def shell_words(command: str) -> list | None:
    """/bin/sh's words for a command with quotes and backslashes only, or None where the shell would do anything
    else with it (;, |, &, redirections, subshells, $ expansion, backquotes, newlines)."""
    words, current, quote, i, started = [], [], "", 0, False
    while i < len(command):
        ch = command[i]
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                current.append(ch)
        elif quote == '"':
            if ch == '"':
                quote = ""
            elif ch in "$`":
                return None
            elif ch == "\\" and command[i + 1:i + 2] in ('"', "\\"):
                current.append(command[i + 1])
                i += 1
            else:
                current.append(ch)
        elif ch in " \t":
            if started:
                words.append("".join(current))
            current, started = [], False
        elif ch in SHELL_SYNTAX:
            return None
        elif ch in "'\"":
            quote, started = ch, True
        elif ch == "\\":
            if command[i + 1:i + 2] in ("", "\n"):
                return None
            current.append(command[i + 1])
            started = True
            i += 1
        else:
            current.append(ch)
            started = True
        i += 1
    if quote:
        return None
    if started:
        words.append("".join(current))
    return words
