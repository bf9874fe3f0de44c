"""The lanes of a search against the scripted OpenAI-protocol server and the real verifier: no answer that arrived
is left unverified at a cap or at the budget's end, lanes start apart, a kernel is verified once however often
it is answered, and the prompts say the changed sizes once and offer what fits the problem."""
from __future__ import annotations

import asyncio
from concurrent.futures import Future

from .conftest import PROBLEMS
from .openai_server import ScriptedServer, fenced
from .test_solve import PROBLEM, attempts, code, solve
from kernelsearch.llm.client import Completion
from kernelsearch.problem import load_problem
from kernelsearch.search.display import Display
from kernelsearch.search.lanes import Search
from kernelsearch.search.problem_profile import ProblemProfile
from kernelsearch.search.solve_config import SolveConfig
from kernelsearch.store import RunStore
from kernelsearch.verify import Verdict, VerifyRequest

VERIFIED = {"correct", "compile_error", "runtime_error", "timeout", "incorrect", "rejected", "compiled",
            "problem_error"}
FIRST, FUSED = "## This attempt: a first correct kernel", "## This attempt: one fused kernel from the start"


def test_at_the_attempt_cap_every_answer_that_arrived_is_verified(tmp_path):
    run = tmp_path / "run"
    script = [{"match": FIRST, "content": fenced(code("add_relu_triton"))},
              {"match": FUSED, "content": fenced(code("add_relu_slow")), "delay": 8}]  # lands after the cap
    with ScriptedServer(script) as server:
        status = solve(PROBLEM, "--base-url", server.url, "--lanes", "2", "--budget", "5m", "--max-attempts", "2",
                       "--out", str(run))
    assert status == 0
    rows = attempts(run)
    assert [(r["lane"], r["step"], r["status"]) for r in rows] == [(0, 1, "correct"), (1, 1, "correct")]
    lane0, lane1 = rows
    assert lane1["started_s"] + lane1["llm_s"] > lane0["finished_s"]  # its answer came after the cap stopped lane 0
    assert all(r["finished_s"] is not None for r in rows)

    # the lanes opened apart, and an elementwise problem was never offered tensor cores
    assert (lane0["strategy"], lane1["strategy"]) == ("first", "first_fused")
    assert lane0["prompt"] != lane1["prompt"]
    assert not any("tensor cores" in r["prompt"] or "tl.dot" in r["prompt"] for r in rows)


def test_at_the_end_of_the_budget_an_answer_that_arrived_is_still_verified(tmp_path):
    run = tmp_path / "run"
    script = [{"content": fenced(code("add_relu_triton")), "delay": 4.7}]  # arrives 0.3 s before the end
    with ScriptedServer(script, default={"content": "no idea", "delay": 30}) as server:
        status = solve(PROBLEM, "--base-url", server.url, "--lanes", "1", "--budget", "5s", "--out", str(run))
    assert status == 0
    rows = attempts(run)
    # under load the lane may ask once more before the deadline: that question is cancelled, never the answer
    [row] = [r for r in rows if r["status"] != "cancelled"]
    assert row["status"] == "correct" and row["finished_s"] > 5.0  # verified after the deadline, not cancelled
    assert row is rows[0]


def test_a_shrunk_matmul_says_the_sizes_once_offers_safe_tensor_cores_and_verifies_a_kernel_once(tmp_path):
    problem = tmp_path / "big_matmul.py"
    source = (PROBLEMS / "matmul.py").read_text()
    problem.write_text(source.replace("M = 64", "M = 1024").replace("K = 48", "K = 1024").replace("N = 40", "N = 1024"))
    run = tmp_path / "run"
    kernel = code("matmul_triton")
    same_kernel = "# the same kernel, written again\n" + kernel.replace("\n\n", "\n")
    script = [{"match": FIRST, "content": fenced(kernel)},
              {"match": "## This attempt: a tiled tensor-core kernel", "content": fenced(same_kernel), "delay": 0.5}]
    with ScriptedServer(script) as server:
        status = solve(str(problem), "--set", "M=64", "--set", "K=48", "--set", "N=40", "--base-url", server.url,
                       "--lanes", "2", "--budget", "5m", "--max-attempts", "4", "--out", str(run))
    assert status == 0
    rows = attempts(run)
    first, tensor = rows[0], rows[1]
    assert (first["strategy"], tensor["strategy"]) == ("first", "first_tensor_cores")
    assert 'input_precision="tf32x3"' in tensor["prompt"] and 'input_precision="ieee"' in tensor["prompt"]
    # the same kernel answered twice was verified once: the second attempt reuses the first's verdict
    assert (first["status"], tensor["status"]) == ("correct", "duplicate")
    assert tensor["note"] == "duplicate of attempt 1" and tensor["verify_s"] is None
    after = next(r for r in rows if r["lane"] == 1 and r["step"] == 2)
    assert after["strategy"] == "fix_duplicate" and after["base_id"] == 2
    assert "the same kernel as attempt 1" in after["prompt"] and "perhaps by another lane" in after["prompt"]
    tried = after["prompt"].split("## Designs other lanes have tried in this run")[1].split("## This attempt")[0]
    assert "- attempt 1 (lane 0, a first correct kernel): correct;" in tried  # the design it repeated, now shown
    for row in rows:  # every prompt says once that the original sizes are the target, and never in a verdict
        prompt = row["prompt"]
        assert prompt.count("This run changed the problem's sizes") == 1 and "problem changed" not in prompt
        assert "M = 64 (originally 1024), K = 48 (originally 1024), N = 40 (originally 1024)" in prompt
        assert prompt.count("atol = rtol = 1e-4") == 1 and "tolerance: kernelbench" not in prompt
        assert "Work per call at the original sizes: 12.6 MB" in prompt


# ---- one lane's steps, with a stand-in verifier (no worker) ------------------------------------------------
class CountingPool:
    """Stands in for the worker pool: counts requests, answers from a list of statuses (kernels that launch
    `launches` kernels of their own, as the verifier counts them on a CPU too)."""
    device, info = "cpu", {"device_name": "cpu"}

    def __init__(self, statuses: list[str], launches: int = 0):
        self.statuses, self.requests, self.launches = list(statuses), [], launches

    def submit(self, request: VerifyRequest) -> Future:
        self.requests.append(request)
        future = Future()
        future.set_result(Verdict(self.statuses.pop(0), "", device="cpu", kernel_launches=self.launches))
        return future


class Answers:
    def __init__(self, *answers: str):
        self.answers = list(answers)

    async def complete(self, prompt, on_progress=None):
        return Completion(answer=fenced(self.answers.pop(0)), reasoning="", finish_reason="stop")


def one_lane(tmp_path, pool, client, lanes: int = 1, profile: ProblemProfile | None = None) -> Search:
    search = Search(load_problem(PROBLEMS / "elementwise_add_relu.py"), SolveConfig(lanes=lanes), client, pool,
                    RunStore(tmp_path / "store.sqlite"), Display(live=False))
    search.profile = profile or ProblemProfile(ops=["add", "relu"], kinds=["elementwise"], op_calls=2, flops=0.0,
                                               bytes=192000)
    search.display.start(search.name, 60, 60, lanes)
    return search


# RMSNorm (KernelBench L1 36) as profiled: one reduction and elementwise work, which one kernel does whole
RMS_NORM = ProblemProfile(ops=["pow", "mean", "add", "sqrt", "div"], kinds=["reduction", "elementwise"],
                          op_calls=5, flops=0.0, bytes=15_032_385_536, read_bytes=7_516_192_768)


def cpu_run(tmp_path, attempts_per_lane: int, launches: int) -> list:
    """Two lanes of RMSNorm on the CPU whose every answer (a new kernel each time) is correct, in turn."""
    n = 2 * attempts_per_lane
    search = one_lane(tmp_path, CountingPool(["correct"] * n, launches=launches),
                      Answers(*(f"class ModelNew:\n    k = {i}\n" for i in range(n))), lanes=2, profile=RMS_NORM)

    async def run():
        for _ in range(attempts_per_lane):
            for lane in search.lanes:
                await search.attempt(lane)

    asyncio.run(run())
    rows = search.store.attempts()
    search.store.close()
    return rows


def test_a_cpu_run_says_up_front_that_nothing_is_timed_and_calls_no_kernel_the_best(tmp_path):
    rows = cpu_run(tmp_path, attempts_per_lane=3, launches=1)
    for row in rows:  # the first prompts too, before any worker reported its device
        intro = " ".join(row.prompt.split("## The problem")[0].split())  # line breaks aside
        assert "Triton interpreter" in intro and "speed is not measured" in intro and "re-timed later on a GPU" in intro
        assert "then for speed" not in row.prompt and "best" not in row.prompt.lower()
    later = [r for r in rows if r.step > 1]
    assert later and all("## The kernel this attempt builds on (attempt" in r.prompt for r in later)
    assert all("no verified kernel is ranked above another: this one is this lane's latest" in r.prompt for r in later)
    # each lane builds on its own latest kernel, not on the first that passed
    assert [r.base_id for r in rows if r.lane == 1] == [None, 2, 4]


def test_a_lane_repeats_no_strategy_while_others_are_left_and_skips_fusing_a_one_launch_kernel(tmp_path):
    rows = cpu_run(tmp_path, attempts_per_lane=5, launches=1)
    for lane in (0, 1):
        tried = [r.strategy for r in rows if r.lane == lane and r.step > 1]
        # one_pass, vectorize, algebra, tune apply; fusing and fewer launches do not: one kernel does it all
        assert sorted(tried) == ["algebra", "one_pass", "tune", "vectorize"], tried
    at_step = {}
    for r in rows:
        at_step.setdefault(r.step, set()).add(r.strategy)
    assert all(len(names) == 2 for names in at_step.values())  # the two lanes never share a step's strategy


def test_a_kernel_of_several_launches_is_asked_to_fuse_with_the_problems_own_words(tmp_path):
    rows = cpu_run(tmp_path, attempts_per_lane=2, launches=3)
    fused = [r for r in rows if r.strategy == "fuse"]
    assert fused, [r.strategy for r in rows]
    text = fused[0].prompt.split("## This attempt")[1]
    assert "before and after a reduction" in text and "product" not in text and "convolution" not in text


def tried_section(prompt: str) -> str:
    head = "## Designs other lanes have tried in this run"
    return prompt.split(head)[1].split("## This attempt")[0] if head in prompt else ""


def test_a_lane_is_shown_the_designs_the_other_lanes_tried(tmp_path):
    answers = [f'"""Design {i}: one program per row."""\nclass ModelNew:\n    k = {i}\n' for i in range(4)]
    answers[1] = "import triton\n\n\n@triton.jit\ndef rms_kernel(x):\n    pass\n\n\nclass ModelNew:\n    k = 1\n"
    search = one_lane(tmp_path, CountingPool(["correct", "incorrect", "correct", "correct"], launches=1),
                      Answers(*answers), lanes=2, profile=RMS_NORM)

    async def run():
        for _ in range(2):
            for lane in search.lanes:
                await search.attempt(lane)

    asyncio.run(run())
    rows = search.store.attempts()
    search.store.close()
    assert [(r.id, r.lane, r.step) for r in rows] == [(1, 0, 1), (2, 1, 1), (3, 0, 2), (4, 1, 2)]
    assert tried_section(rows[0].prompt) == ""  # nothing tried yet
    assert tried_section(rows[1].prompt).strip().splitlines()[0] == (
        "- attempt 1 (lane 0, a first correct kernel): correct; Design 0: one program per row.")
    lane0_next = tried_section(rows[2].prompt)  # the other lane's only, not its own
    assert "- attempt 2 (lane 1, one fused kernel from the start): incorrect; defines rms_kernel" in lane0_next
    assert "attempt 1 " not in lane0_next
    # the fix of attempt 2 answers its own code: no list of other designs there
    assert rows[3].strategy == "fix_wrong" and tried_section(rows[3].prompt) == ""


def test_a_fix_names_the_attempt_it_fixes_and_a_repeated_kernel_is_not_verified_again(tmp_path):
    kernel = "class ModelNew:\n    pass  # one\n"
    pool = CountingPool(["incorrect", "correct"])
    search = one_lane(tmp_path, pool, Answers(kernel, "# again\nclass ModelNew:\n\n    pass\n", "class ModelNew: 2"))

    async def three_attempts():
        for _ in range(3):
            await search.attempt(search.lanes[0])

    asyncio.run(three_attempts())
    rows = search.store.attempts()
    assert [(r.strategy, r.status, r.base_id) for r in rows] == [
        ("first", "incorrect", None), ("fix_wrong", "duplicate", 1), ("fix_wrong", "correct", 2)]
    assert len(pool.requests) == 2  # the second answer was the first kernel again: not verified twice
    assert "the same kernel as attempt 1" in rows[2].prompt
    search.store.close()


class BrokenPool(CountingPool):
    def submit(self, request: VerifyRequest) -> Future:
        raise RuntimeError("the pool broke")


def test_an_error_of_ours_closes_the_attempt_and_is_reported_even_after_a_cap(tmp_path):
    search = one_lane(tmp_path, BrokenPool([]), Answers("class ModelNew: pass\n"))
    search.halt("attempt cap reached (1)", finish=True)  # a cap first: the error must still be told
    try:
        asyncio.run(search.attempt(search.lanes[0]))
    except RuntimeError as e:
        search.halt(f"internal error: {e}", fatal=True)
    [row] = search.store.attempts()
    assert row.status == "cancelled" and row.note == "internal error: RuntimeError: the pool broke"
    assert row.finished_s is not None  # its budget is recorded
    assert search.fatal == "internal error: the pool broke" and search.stop_reason == "attempt cap reached (1)"
    search.store.close()


def test_an_error_of_ours_while_the_seed_is_verified_closes_it_and_stops_the_search(tmp_path):
    from kernelsearch.search.seed import Seed

    search = one_lane(tmp_path, BrokenPool([]), Answers("class ModelNew: pass\n"))
    asyncio.run(search.plant(Seed("class ModelNew: pass\n", "generated by a test")))
    [row] = search.store.attempts()
    assert (row.strategy, row.status) == ("generated", "cancelled") and row.finished_s is not None
    assert row.note == "internal error: RuntimeError: the pool broke"
    assert search.fatal == "internal error: RuntimeError: the pool broke"
    search.store.close()
