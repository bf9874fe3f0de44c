"""KernelBench problem files: validation, --set overrides, the second input shape."""
import pytest

from kernelsearch.problem import ProblemError, load_problem, parse_overrides

from .conftest import PROBLEMS


def test_loads_a_problem_and_its_constants():
    problem = load_problem(PROBLEMS / "elementwise_add_relu.py")
    assert problem.name == "elementwise_add_relu"
    assert problem.constants == {"batch_size": 16, "dim": 1000}
    assert problem.overrides == {}


def test_override_rewrites_the_constant_and_reports_it(tmp_path):
    path = tmp_path / "p.py"
    path.write_text("import torch\nclass Model: pass\nN = 8\nM = 2 * N\ndef get_inputs(): return [torch.rand(M)]\n"
                    "def get_init_inputs(): return []\n")
    problem = load_problem(path, parse_overrides(["N=3"]))
    assert problem.overrides == {"N": ("8", "3")}
    assert problem.constants["N"] == 3 and problem.constants["M"] == 6  # derived constants follow
    assert "N = 3" in problem.source


@pytest.mark.parametrize("items, message", [
    (["batch_size"], "NAME=VALUE"),
    (["batch_size=abc"], "not a Python literal"),
    (["1x=3"], "NAME=VALUE"),
])
def test_bad_overrides_are_usage_errors(items, message):
    with pytest.raises(ProblemError, match=message):
        parse_overrides(items)


def test_override_of_an_unknown_constant_names_the_known_ones():
    with pytest.raises(ProblemError, match=r"no such top-level constant.*batch_size, dim"):
        load_problem(PROBLEMS / "elementwise_add_relu.py", {"nope": "1"})


def test_missing_file_and_missing_definitions(tmp_path):
    with pytest.raises(ProblemError, match="not found"):
        load_problem(tmp_path / "absent.py")
    bad = tmp_path / "bad.py"
    bad.write_text("class Model: pass\n")
    with pytest.raises(ProblemError, match="get_inputs, get_init_inputs"):
        load_problem(bad)
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    with pytest.raises(ProblemError, match="syntax error"):
        load_problem(broken)


def test_variant_changes_only_constants_the_model_does_not_read():
    problem = load_problem(PROBLEMS / "conv_relu_bias.py")
    source, changes = problem.variant()
    # channels and kernel size feed get_init_inputs, so they stay; the rest become odd and smaller
    assert changes == {"batch_size": (2, 3), "height": (12, 7), "width": (12, 7)}
    assert "batch_size = 3" in source and "height = 7" in source
    assert load_problem(PROBLEMS / "row_sum.py").variant()[1] == {"batch_size": (8, 5), "dim1": (300, 151)}
