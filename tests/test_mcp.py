"""`kernelsearch mcp` end to end: a client of the official MCP SDK starts the server over stdio, lists its tools and
calls each one; a candidate that kills its worker, a call that runs out of time and bad arguments all leave the
server answering; closing stdin, SIGTERM or Ctrl-C leaves no worker behind."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.from_thread
import pytest
from mcp.client.session import ClientSession  # the test extra installs the SDK (pyproject.toml)
from mcp.client.stdio import StdioServerParameters, stdio_client

from .conftest import CANDIDATES, DEVICE, ON_GPU, PROBLEMS
from .openai_server import ScriptedServer, fenced
from .test_process_hygiene import alive, in_a_job, wait_for
from .test_solve import SECRET, solve
from kernelsearch.agents.gpu_turns import GpuTurns
from kernelsearch.search.run_dir import RunDir
from kernelsearch.search.solve_config import SolveConfig
from kernelsearch.search.suite_run import save_bench
from kernelsearch.suites import SuiteProblem

REPO = Path(__file__).resolve().parents[1]
ADD_RELU = PROBLEMS / "elementwise_add_relu.py"
TOOLS = {"verify", "problem_info", "list_problems", "generate_attention", "profile", "run_status"}
OUR_PROCESSES = (b"kernelsearch.verify.worker", b"kernelsearch.agents.probe")
CALL_TIMEOUT_S = 8  # the short --timeout of the hang test; every call of the other tests takes under 5 s on a CPU
EXIT_S, DEATH_S = 10, 5


def server_args(*extra: str) -> list[str]:
    return ["-m", "kernelsearch", "mcp", "--device", DEVICE, *extra]


@asynccontextmanager
async def open_session(tmp: Path, *extra: str):
    """A client session with a fresh server whose temporary files (and so its workers) live under `tmp`."""
    params = StdioServerParameters(command=sys.executable, args=server_args(*extra), cwd=str(REPO),
                                   env={**os.environ, "TMPDIR": str(tmp)})
    with open(tmp / "server.log", "w") as log:
        async with stdio_client(params, errlog=log) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


class Client:
    """Synchronous calls into one session that lives in a background event loop (a module's tests share it)."""

    def __init__(self, portal, session: ClientSession, root: Path):
        self.portal, self.session, self.root = portal, session, root

    def call(self, tool: str, **arguments):
        return self.portal.call(lambda: self.session.call_tool(tool, arguments))

    def tools(self):
        return self.portal.call(self.session.list_tools).tools


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("mcp")
    with anyio.from_thread.start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(open_session(root)) as session:
            yield Client(portal, session, root)


def ours_under(root: Path) -> list[int]:
    """Verifier workers and probes started by a server whose temporary directory is under `root`."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            if not any(name in cmdline for name in OUR_PROCESSES) or not alive(int(entry)):
                continue
            if str(root).encode() in cmdline or Path(os.readlink(f"/proc/{entry}/cwd")).is_relative_to(root):
                found.append(int(entry))
        except OSError:
            continue
    return found


def text(result) -> str:
    return "\n".join(c.text for c in result.content)


# ---- the tools, one shared server ----------------------------------------------------------------------------
def test_the_server_lists_six_tools_with_their_arguments(client):
    tools = {t.name: t for t in client.tools()}
    assert set(tools) == TOOLS
    verify = tools["verify"].input_schema
    assert verify["required"] == ["problem", "candidate"]
    assert set(verify["properties"]) == {"problem", "candidate", "dtype", "set", "tolerance", "atol", "rtol", "timing",
                                         "strict", "rules"}
    assert verify["properties"]["dtype"]["enum"] == ["fp32", "fp16", "bf16"]
    assert tools["problem_info"].input_schema["required"] == ["problem"]
    assert tools["list_problems"].input_schema["required"] == ["suite"]
    assert set(tools["generate_attention"].input_schema["properties"]) == {"spec", "shape"}
    assert tools["profile"].input_schema["required"] == ["problem", "candidate"]
    assert tools["run_status"].input_schema["required"] == ["run_dir"]
    for tool in tools.values():
        assert tool.description and tool.output_schema["type"] == "object"


def test_verify_takes_source_text_and_answers_with_the_verdict(client):
    result = client.call("verify", problem=ADD_RELU.read_text(),
                         candidate=(CANDIDATES / "add_relu_triton.py").read_text())
    assert not result.is_error
    verdict = result.structured_content
    assert verdict["status"] == "correct", text(result)
    assert (verdict["problem"], verdict["candidate"]) == ("problem", "candidate")  # source text has no file name
    assert len(verdict["trials"]) == 5 and verdict["checks"]["second_shape"]["ok"]
    assert verdict["mismatch"] is None and verdict["pytorch_ops"] == []
    assert result.content[0].text.startswith("correct: candidate vs problem")
    assert json.loads(result.content[1].text)["status"] == "correct"  # the same data as JSON text


def test_a_wrong_kernel_comes_back_with_its_mismatch_report(client):
    result = client.call("verify", problem=str(ADD_RELU), candidate=str(CANDIDATES / "add_relu_wrong_tail.py"),
                         timing=False)
    verdict = result.structured_content
    assert not result.is_error and verdict["status"] == "incorrect"
    assert verdict["mismatch"]["wrong"] == verdict["trials"][0]["mismatch"]["wrong"] > 0
    assert "only indices 512..999 are wrong" in result.content[0].text


@pytest.mark.skipif(ON_GPU, reason="out_of_bounds.py kills the CPU worker (on a GPU it is an illegal access)")
def test_a_candidate_that_kills_its_worker_is_a_verdict_and_the_next_call_works(client):
    crashed = client.call("verify", problem=str(ADD_RELU), candidate=str(CANDIDATES / "out_of_bounds.py"))
    assert not crashed.is_error
    assert crashed.structured_content["status"] == "runtime_error"
    assert "worker process" in crashed.structured_content["message"]
    after = client.call("verify", problem=str(ADD_RELU), candidate=str(CANDIDATES / "add_relu_triton.py"))
    assert after.structured_content["status"] == "correct", text(after)


def test_problem_info_gives_shapes_work_and_the_constants_set_changes(client):
    result = client.call("problem_info", problem=str(PROBLEMS / "conv_relu_bias.py"),
                         set={"out_channels": 4, "bias_shape": [4, 1, 1]})  # a JSON list for a tuple constant
    assert not result.is_error, text(result)
    info = result.structured_content
    assert info["changed"] == {"out_channels": "4", "bias_shape": "(4, 1, 1)"}
    assert info["constants"]["out_channels"] == 4 and info["constants"]["height"] == 12
    assert info["inputs"] == [{"shape": [2, 3, 12, 12], "dtype": "float32"}]
    assert info["outputs"] == [{"shape": [2, 4, 10, 10], "dtype": "float32"}]
    assert info["flops"] == 2 * (2 * 4 * 10 * 10) * (3 * 3 * 3)  # a multiply-add per output and kernel weight
    parameters = 4 * 3 * 3 * 3 + 4 + 4  # conv weight and bias, the added bias
    assert info["elements"] == 2 * 3 * 12 * 12 + parameters + 2 * 4 * 10 * 10
    assert info["bytes_fp32"] == 4 * info["elements"]
    assert info["reference"]["median_ms"] > 0 and info["reference"]["reps"] >= 3
    if not ON_GPU:
        assert info["cpu_interpreter"]["fits"] is True
    assert "constants `set` may change: batch_size=2" in result.content[0].text


def test_list_problems_reads_a_directory_a_kernelbench_checkout_and_the_attention_examples(client, tmp_path):
    result = client.call("list_problems", suite=str(PROBLEMS))
    listing = result.structured_content
    assert listing["kind"] == "directory" and listing["count"] == len(list(PROBLEMS.glob("*.py")))
    assert {p["name"] for p in listing["problems"]} == {p.stem for p in PROBLEMS.glob("*.py")}

    level = tmp_path / "KernelBench" / "level2"
    level.mkdir(parents=True)
    shutil.copy(PROBLEMS / "matmul.py", level / "7_Matmul.py")
    shutil.copy(ADD_RELU, level / "12_AddReLU.py")
    listing = client.call("list_problems", suite=str(tmp_path), level=2).structured_content
    assert listing["kind"] == "kernelbench" and listing["level"] == 2
    assert [(p["key"], p["number"]) for p in listing["problems"]] == [("L2-007_Matmul", 7), ("L2-012_AddReLU", 12)]

    listing = client.call("list_problems", suite="attention").structured_content
    examples = sorted(p.stem for p in (REPO / "examples" / "attention").glob("*.py"))
    assert [p["key"] for p in listing["problems"]] == examples
    info = client.call("problem_info", problem=listing["problems"][0]["path"])  # each path is a real problem
    assert not info.is_error and info.structured_content["inputs"][0]["shape"][0] >= 1


def test_generate_attention_returns_the_kernel_and_its_verdict(client):
    result = client.call("generate_attention", spec=str(REPO / "examples" / "attention" / "causal.py"))
    assert not result.is_error, text(result)
    data = result.structured_content
    assert data["verdict"]["status"] == "correct", text(result)
    assert "class ModelNew" in data["source"] and "@triton.jit" in data["source"]
    assert Path(data["kernel_path"]).read_text() == data["source"]
    assert data["shape_index"] == 0 and data["shape"].startswith("B=")


def test_profile_needs_a_gpu_and_says_so(client):
    result = client.call("profile", problem=str(ADD_RELU), candidate=str(CANDIDATES / "add_relu_triton.py"))
    assert not result.is_error, text(result)
    data = result.structured_content
    if not ON_GPU:
        assert data["status"] == "needs_gpu" and data["kernels"] == []
        assert "needs a CUDA GPU" in result.content[0].text
    else:
        assert data["status"] == "profiled"
        assert any(k["own"] and "add_relu_kernel" in k["name"] for k in data["kernels"])
        assert data["forward"]["median_ms"] > 0 and 0 < data["roofline_fraction"] <= 1.5


@pytest.fixture(scope="module")
def solve_run(tmp_path_factory):
    """A real solve run (the scripted model's wrong kernel, then a right one) and its best kernel's source."""
    run = tmp_path_factory.mktemp("runs") / "solve"
    script = [{"content": fenced((CANDIDATES / "add_relu_wrong_tail.py").read_text())},
              {"content": fenced((CANDIDATES / "add_relu_triton.py").read_text())}]
    with ScriptedServer(script, api_key=SECRET) as server, pytest.MonkeyPatch.context() as env:
        env.setenv("KS_MCP_TEST_KEY", SECRET)
        status = solve(str(ADD_RELU), "--base-url", server.url, "--api-key-env", "KS_MCP_TEST_KEY", "--lanes", "1",
                       "--budget", "5m", "--max-attempts", "2", "--out", str(run))
    assert status == 0
    return run, (CANDIDATES / "add_relu_triton.py").read_text()


def test_run_status_reads_a_finished_and_an_unfinished_solve_run(client, solve_run, tmp_path):
    run, best_code = solve_run
    result = client.call("run_status", run_dir=str(run))
    status = result.structured_content
    assert (status["kind"], status["state"], status["attempts"]) == ("solve", "finished", 2)
    assert result.content[0].text.splitlines()[1].startswith(f"  best: {RunDir(run).best} (passed the cold re-check")
    assert status["statuses"] == {"incorrect": 1, "correct": 1}
    assert status["best"]["attempt"] == 2 and best_code.strip() in status["best"]["code"]

    stopped = tmp_path / "stopped"  # the same run before its end: no summary, no best.py yet
    shutil.copytree(run, stopped)
    RunDir(stopped).summary.unlink()
    RunDir(stopped).best.unlink()
    status = client.call("run_status", run_dir=str(stopped)).structured_content
    assert status["state"] == "unfinished" and "--resume" in status["note"]
    assert status["best"]["attempt"] == 2 and status["best"]["code"].strip() == best_code.strip()


def test_run_status_reads_a_bench(client, solve_run, tmp_path):
    run, _ = solve_run
    bench = tmp_path / "bench"
    problems = [SuiteProblem(key=key, name=key, path=ADD_RELU) for key in ("L1-001_add_relu", "L1-002_relu")]
    save_bench(bench, problems, {"name": "kernelbench"}, SolveConfig(), None)
    shutil.copytree(run, RunDir(bench).problem("L1-001_add_relu").path)
    status = client.call("run_status", run_dir=str(bench)).structured_content
    assert status["kind"] == "bench" and status["states"] == {"finished": 1, "not started": 1}
    first, second = status["problems"]
    assert first["best"]["kernel_path"] == str(RunDir(bench).problem("L1-001_add_relu").best)
    assert "code" not in first["best"] and second == {"key": "L1-002_relu", "state": "not started"}
    assert "--resume" in status["note"]


@pytest.mark.parametrize("tool, arguments, message", [
    ("verify", {"problem": "no/such/problem.py", "candidate": str(CANDIDATES / "add_relu_triton.py")},
     "problem file not found: no/such/problem.py"),
    ("verify", {"problem": str(CANDIDATES / "add_relu_triton.py"), "candidate": str(CANDIDATES / "relu_triton.py")},
     "is not a KernelBench problem"),
    ("verify", {"problem": str(ADD_RELU), "candidate": "no/such/candidate.py"}, "candidate file not found"),
    ("verify", {"problem": str(ADD_RELU), "candidate": str(CANDIDATES / "add_relu_triton.py"), "set": {"depth": 3}},
     "no such top-level constant in elementwise_add_relu.py (constants: batch_size, dim)"),
    ("problem_info", {"problem": str(PROBLEMS / "conv_relu_bias.py"), "set": {"bias_shape": [8, 1]}},
     "give a tuple of 3 elements"),
    ("problem_info", {"problem": str(ADD_RELU), "set": {"dim": -4}}, "a size must be a positive integer"),
    ("verify", {"problem": str(ADD_RELU), "candidate": str(CANDIDATES / "add_relu_triton.py"), "tolerance": "loose"},
     "unknown tolerance profile 'loose'"),
    ("verify", {"problem": str(ADD_RELU), "candidate": str(CANDIDATES / "add_relu_triton.py"), "dtype": "fp64"},
     "dtype"),
    ("generate_attention", {"spec": str(REPO / "examples" / "attention" / "causal.py"), "shape": 9},
     "shape 9 does not exist"),
    ("list_problems", {"suite": "no/such/suite"}, "suite not found: no/such/suite"),
    ("profile", {"problem": str(ADD_RELU), "candidate": str(CANDIDATES / "hacks" / "opens_socket.py")},
     "static checks: line 2: imports socket"),
    ("run_status", {"run_dir": str(PROBLEMS)}, "is not a kernelsearch run"),
])
def test_bad_arguments_are_tool_errors_and_the_server_goes_on(client, tool, arguments, message):
    result = client.call(tool, **arguments)
    assert result.is_error and message in text(result), text(result)
    assert client.call("list_problems", suite=str(PROBLEMS)).structured_content["count"] > 0


# ---- turns on the GPU: a probe alone, verifications together ---------------------------------------------------
def run_turns(probe_patience: float | None = None) -> list[tuple[str, str]]:
    """Two verifications, then a probe (given up after `probe_patience` s, when set), then a third verification."""
    events = []

    async def verification(name: str, seconds: float, turns: GpuTurns):
        async with turns.shared():
            events.append(("start", name))
            await anyio.sleep(seconds)
            events.append(("end", name))

    async def probe(turns: GpuTurns):
        with anyio.move_on_after(probe_patience if probe_patience is not None else 10):
            async with turns.exclusive():
                events.append(("start", "probe"))
                await anyio.sleep(0.05)
                events.append(("end", "probe"))

    async def scenario():
        turns = GpuTurns(on_gpu=True)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(verification, "v1", 0.3, turns)
            tasks.start_soon(verification, "v2", 0.3, turns)
            await anyio.sleep(0.05)
            tasks.start_soon(probe, turns)
            await anyio.sleep(0.05)
            tasks.start_soon(verification, "v3", 0.05, turns)

    anyio.run(scenario)
    return events


def test_a_probe_waits_for_the_verifications_and_later_ones_wait_for_it():
    events = run_turns()
    assert events[:2] == [("start", "v1"), ("start", "v2")]  # verifications share the GPUs
    assert events.index(("start", "probe")) > max(events.index(("end", "v1")), events.index(("end", "v2")))
    assert events.index(("start", "v3")) > events.index(("end", "probe"))  # no verification jumps the queue


def test_a_probe_that_gives_up_waiting_lets_the_verifications_go_on():
    events = run_turns(probe_patience=0.1)
    assert ("start", "probe") not in events
    assert events.index(("start", "v3")) < events.index(("end", "v1"))


# ---- deadlines and stopping: servers of their own ------------------------------------------------------------
def test_a_call_past_the_timeout_is_a_tool_error_and_its_worker_is_replaced(tmp_path):
    async def scenario():
        async with open_session(tmp_path, "--timeout", str(CALL_TIMEOUT_S)) as session:
            began = time.monotonic()
            hung = await session.call_tool("verify", {"problem": str(ADD_RELU),
                                                      "candidate": str(CANDIDATES / "hang.py")})
            waited = time.monotonic() - began
            assert hung.is_error and f"did not finish within {CALL_TIMEOUT_S} s" in text(hung)
            assert CALL_TIMEOUT_S <= waited < CALL_TIMEOUT_S + 10
            # the hung worker was killed, not left to spin until the verifier's own limit (30 s and more)
            wait_for(lambda: not ours_under(tmp_path), DEATH_S, "the hung worker to be killed")
            good = await session.call_tool("verify", {"problem": str(ADD_RELU),
                                                      "candidate": str(CANDIDATES / "add_relu_triton.py")})
            assert good.structured_content["status"] == "correct", text(good)

    anyio.run(scenario)


class RawServer:
    """The server driven with plain JSON-RPC lines, to close its stdin or signal it and watch it end."""

    def __init__(self, root: Path):
        env = {**os.environ, "TMPDIR": str(root)}
        self.proc = subprocess.Popen([sys.executable, *server_args()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(root / "server.log", "w"), env=env, cwd=REPO)
        self.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}})
        assert json.loads(self.proc.stdout.readline())["result"]["serverInfo"]["name"] == "kernelsearch"
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message: dict) -> None:
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def start_hanging_verify(self) -> None:
        self.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "verify", "arguments": {
            "problem": str(ADD_RELU), "candidate": str(CANDIDATES / "hang.py")}}})


@pytest.mark.parametrize("how", ["stdin closed", "SIGTERM", "SIGINT"])
def test_the_server_leaves_no_worker_behind(tmp_path, how):
    server = RawServer(tmp_path)
    server.start_hanging_verify()
    workers = wait_for(lambda: ours_under(tmp_path), 120, "a verifier worker")
    wait_for(lambda: any(in_a_job(w) for w in ours_under(tmp_path)), 60, "the worker to take the candidate")
    time.sleep(2)  # it spins in its second call by now
    if how == "stdin closed":
        server.proc.stdin.close()
        assert server.proc.wait(EXIT_S) == 0  # it ended by itself: no signal needed
    else:
        server.proc.send_signal(getattr(signal, how))
        assert server.proc.wait(EXIT_S) == 128 + getattr(signal, how)
    wait_for(lambda: not any(alive(pid) for pid in workers) and not ours_under(tmp_path), DEATH_S,
             "the workers to end")
    assert not list(tmp_path.glob("kernelsearch-*"))  # the pool's and the server's temporary directories


def test_without_the_extra_the_command_says_how_to_install_it():
    block_mcp = "import sys; sys.modules['mcp'] = None; from kernelsearch.cli import main; main(['mcp'])"
    done = subprocess.run([sys.executable, "-c", block_mcp], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == ("kernelsearch: error: `kernelsearch mcp` needs the MCP SDK: "
                                   "pip install 'kernelsearch[mcp]'")
