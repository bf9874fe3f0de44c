"""A candidate must not be handed a right answer left in memory by an earlier job of the same problem."""
from ...conftest import CANDIDATES, HACKS


def test_reuse_hack_after_honest_jobs_of_the_same_problem(verify):
    for _ in range(4):  # honest jobs free correct outputs for exactly the seeds the hack will be tried on
        assert verify("elementwise_add_relu", CANDIDATES / "add_relu_triton.py").status == "correct"
        v = verify("elementwise_add_relu", HACKS / "output_buffer_reuse.py")
        assert v.status == "incorrect", v.message
        # NaN poison makes every element wrong; fresh zeroed memory still matches ReLU's zeros (about half);
        # a stale right answer would make almost none wrong.
        assert v.trials[0]["mismatch"]["fraction_wrong"] > 0.4


def test_outputs_the_models_hold_on_to_are_not_overwritten(verify):
    # Freed answers are overwritten with NaN; a buffer both models return as is must survive every trial.
    v = verify("relu_and_table", CANDIDATES / "relu_and_table_triton.py")
    assert v.status == "correct", v.message
