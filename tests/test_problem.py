"""KernelBench problem files: validation, --set overrides, the second input shape."""
import textwrap
import types

import pytest
import torch

from .conftest import CANDIDATES, PROBLEMS
from kernelsearch.cli import main
from kernelsearch.problem import ProblemError, load_problem, parse_overrides
from kernelsearch.sizes import second_value


def write_problem(tmp_path, constants: str, model: str = "", inputs: str = "torch.rand(4)", init: str = "",
                  name: str = "p.py"):
    """A small KernelBench-format problem: `model` is Model's body (a plain forward by default)."""
    model = model or "def forward(self, x):\n    return x"
    path = tmp_path / name
    path.write_text("import torch\nimport torch.nn as nn\n\n\nclass Model(nn.Module):\n"
                    + textwrap.indent(textwrap.dedent(model), "    ") + "\n\n"
                    + textwrap.dedent(constants) + "\n\n"
                    + f"def get_inputs():\n    return [{inputs}]\n\n\ndef get_init_inputs():\n    return [{init}]\n")
    return path


def run_on_meta(source: str):
    """Build the problem's Model from its own init inputs and run it, on the meta device (no memory)."""
    module = types.ModuleType("variant")
    exec(compile(source, "variant", "exec"), module.__dict__)
    with torch.device("meta"):
        model = module.Model(*module.get_init_inputs())
        return model, model(*module.get_inputs())


def test_loads_a_problem_and_its_constants():
    problem = load_problem(PROBLEMS / "elementwise_add_relu.py")
    assert problem.name == "elementwise_add_relu"
    assert problem.constants == {"batch_size": 16, "dim": 1000}
    assert problem.overrides == {}


def test_override_rewrites_the_constant_and_reports_it(tmp_path):
    path = write_problem(tmp_path, "N = 8\nM = 2 * N\n", inputs="torch.rand(M)")
    problem = load_problem(path, parse_overrides(["N=3"]))
    assert problem.overrides == {"N": ("8", "3")}
    assert problem.constants["N"] == 3 and problem.constants["M"] == 6  # derived constants follow
    assert "N = 3" in problem.source


@pytest.mark.parametrize("line, item, expected_line, expected", [
    # one element of a multi-assignment; the rest of the line stays
    ("depth, height, width = 16, 32, 32", "depth=8", "depth, height, width = 8, 32, 32",
     {"depth": 8, "height": 32, "width": 32}),
    ("D, H, W = 16, 32, 32", "W=9", "D, H, W = 16, 32, 9", {"D": 16, "H": 32, "W": 9}),
    # a chained assignment splits only when its names part
    ("height = width = 32", "height=8", "height, width = 8, 32", {"height": 8, "width": 32}),
    ("input_shape = (32768,)", "input_shape=(1024,)", "input_shape = (1024,)", {"input_shape": (1024,)}),
    ("kernel_size = (3, 5)", "kernel_size=(5, 7)", "kernel_size = (5, 7)", {"kernel_size": (5, 7)}),
    ("N: int = 64", "N=17", "N: int = 17", {"N": 17}),
    ("scale = 2.0", "scale=3", "scale = 3", {"scale": 3}),  # an int for a float widens
    ("padding = 1", "padding=0", "padding = 0", {"padding": 0}),  # not a size: 0 is a valid padding
    ("dim = 1", "dim=-1", "dim = -1", {"dim": -1}),  # a small dim is an axis, and -1 a valid one
])
def test_set_rewrites_one_constant_of_any_form(tmp_path, line, item, expected_line, expected):
    problem = load_problem(write_problem(tmp_path, line), parse_overrides([item]))
    assert expected_line in problem.source.splitlines()
    assert {k: problem.constants[k] for k in expected} == expected
    assert all(type(problem.constants[k]) is type(v) for k, v in expected.items())  # tuples stay tuples


@pytest.mark.parametrize("line, item, message", [
    ("N = 8", "N=-4", "N is 8 in p.py; a size must be a positive integer"),
    ("N = 8", "N=0", "a size must be a positive integer"),
    ("batch_size = 16", "batch_size=2.5", "give an integer"),
    ("batch_size = 16", "batch_size='16'", "give an integer"),
    ("batch_size = 16", "batch_size=True", "give an integer"),
    ("input_shape = (32768,)", "input_shape=(1024, 2)", r"give a tuple of 1 element, like \(32768,\)"),
    ("input_shape = (32768,)", "input_shape=1024", "give a tuple of 1 element"),
    ("input_shape = (32768,)", "input_shape=(0,)", r"positive integer \(element 0\)"),
    ("kernel_size = (3, 5)", "kernel_size=(3,)", "give a tuple of 2 elements"),
    ("height, width = 128, 128", "width=-1", "a size must be a positive integer"),
    ("eps = 1e-5", "eps='small'", "give a number"),
])
def test_set_refuses_a_change_of_kind(tmp_path, line, item, message):
    with pytest.raises(ProblemError, match=message):
        load_problem(write_problem(tmp_path, line), parse_overrides([item]))


def test_a_refused_set_is_a_usage_error_on_the_command_line(tmp_path, capsys):
    problem = write_problem(tmp_path, "N = 8")
    with pytest.raises(SystemExit) as exit_:
        main(["verify", str(problem), str(CANDIDATES / "add_relu_triton.py"), "--set", "N=-4"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "positive integer" in err


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


def test_missing_file_missing_definitions_syntax_and_encoding(tmp_path):
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
    latin1 = tmp_path / "latin1.py"
    latin1.write_bytes("# café\nclass Model: pass\n".encode("latin-1"))
    with pytest.raises(ProblemError, match=r"latin1\.py is not UTF-8 text"):
        load_problem(latin1)


LINEAR = dict(model="""
    def __init__(self, in_features, out_features):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
    def forward(self, x):
        return self.fc(x)""", inputs="torch.rand(batch_size, in_features)", init="in_features, out_features")
LSTM = dict(model="""
    def __init__(self, input_size, hidden_size, num_layers):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
    def forward(self, x):
        return self.lstm(x)[0]""", inputs="torch.rand(batch_size, sequence_length, input_size)",
            init="input_size, hidden_size, num_layers")
CONV = dict(model="""
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, num_groups, eps):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups=groups)
        self.norm = nn.GroupNorm(num_groups, out_channels, eps=eps)
    def forward(self, x):
        return self.norm(self.conv(x)) * scaling_factor""",
            inputs="torch.rand(batch_size, in_channels, height, width)",
            init="in_channels, out_channels, kernel_size, stride, padding, dilation, groups, num_groups, eps")


@pytest.mark.parametrize("kind, constants, changes", [
    (LINEAR, "batch_size = 128\nin_features = 1024\nout_features = 512",
     {"batch_size": (128, 65), "in_features": (1024, 513), "out_features": (512, 257)}),
    (LSTM, "batch_size = 10\nsequence_length = 512\ninput_size = 128\nhidden_size = 256\nnum_layers = 6",
     {"batch_size": (10, 5), "sequence_length": (512, 257), "input_size": (128, 65), "hidden_size": (256, 129)}),
    # in_channels is a multiple of groups and out_channels of groups and num_groups: an odd number of those
    (CONV, "batch_size = 16\nin_channels, out_channels = 32, 64\nheight = width = 64\nkernel_size = (3, 5)\n"
           "stride = 2\npadding = (1, 2)\ndilation = 2\ngroups = 4\nnum_groups = 8\neps = 1e-5\nscaling_factor = 2",
     {"batch_size": (16, 9), "in_channels": (32, 20), "out_channels": (64, 40), "height": (64, 33),
      "width": (64, 33)}),
])
def test_variant_changes_every_size_and_the_model_still_builds(tmp_path, kind, constants, changes):
    problem = load_problem(write_problem(tmp_path, constants, **kind))
    variant = problem.variant()
    assert variant.changes == changes  # and nothing else: kernel_size, stride, ..., num_layers stay
    assert variant.changes_parameters
    original, _ = run_on_meta(problem.source)
    model, out = run_on_meta(variant.source)  # built from the variant's own init inputs, and it runs
    assert [p.shape for p in model.parameters()] != [p.shape for p in original.parameters()]


def test_variant_of_a_linear_problem_reshapes_its_weight(tmp_path):
    problem = load_problem(write_problem(tmp_path, "batch_size = 128\nin_features = 1024\nout_features = 512",
                                         **LINEAR))
    model, out = run_on_meta(problem.variant().source)
    assert model.fc.weight.shape == (257, 513) and out.shape == (65, 257)


@pytest.mark.parametrize("constants, fixed", [
    ("kernel_size = 3\nstride = 2\npadding = 4\ndilation = 3\noutput_padding = 1\npool_kernel_size = 2\n"
     "maxpool_stride = 2", "window geometry"),
    ("groups = 4\nnum_groups = 8\nnum_heads = 16\nn_head = 12\nnhead = 8\npatch_size = 16\nblock_len = 64",
     "divisors"),
    ("num_layers = 6\nlayers = [3, 4, 23, 3]\nstages = 3\nexpand_ratio = 6", "structure"),
    ("scaling_factor = 2\nscale = 2\ndivisor = 2\nhardtanh_max = 2\nclamp_max = 10\nnegative_slope = 0.1\n"
     "eps = 1e-5\nmomentum = 0.1\nalpha = 1.0\nbeta = 2\np = 2\ndropout = 0.0", "scalars"),
    ("dim = 2\nreduce_dim = 3\naxis = 2\nsum_dim = 4", "axes"),
])
def test_variant_keeps_hyperparameters(tmp_path, constants, fixed):
    path = write_problem(tmp_path, "batch_size = 16\n" + constants, inputs="torch.rand(batch_size)")
    assert load_problem(path).variant().changes == {"batch_size": (16, 9)}, fixed


def test_derived_constants_follow_and_literal_arithmetic_varies(tmp_path):
    path = write_problem(tmp_path, "N = 2048 * 2\nM = 2 * N\nshape = (N, 3, 224)\nbias_shape = (M, 1, 1)",
                         inputs="torch.rand(M)")
    problem = load_problem(path)
    assert problem.constants["shape"] == (4096, 3, 224)
    variant = problem.variant()
    # N's expression has no names, so it varies; M and the named elements follow; 3 in a shape tuple stays
    assert variant.changes == {"N": (4096, 2049), "shape": ((4096, 3, 224), (2049, 3, 113))}
    module = types.ModuleType("v")
    exec(compile(variant.source, "v", "exec"), module.__dict__)
    assert module.M == 2 * 2049 and module.bias_shape == (4098, 1, 1)
    assert not variant.changes_parameters


def test_variant_keeps_what_the_model_has_built_in(tmp_path):
    # The model hard-codes 3 input channels and keeps its default image size: neither may change.
    model = """
    def __init__(self, num_classes, image_size=32):
        super().__init__()
        assert image_size % 4 == 0
        self.conv = nn.Conv2d(3, 8, 4, stride=4)
        self.fc = nn.Linear(8 * (image_size // 4) ** 2, num_classes)
    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))"""
    path = write_problem(tmp_path, "batch_size = 10\ninput_channels = 3\nimage_size = 32\nnum_classes = 1000",
                         model=model, inputs="torch.rand(batch_size, input_channels, image_size, image_size)",
                         init="num_classes")
    variant = load_problem(path).variant()
    assert variant.changes == {"batch_size": (10, 5), "num_classes": (1000, 501)}
    run_on_meta(variant.source)


def test_variant_keeps_sizes_multiples_of_what_the_model_divides_them_by(tmp_path):
    model = """
    def __init__(self, in_channels, out_channels, num_groups=4):
        super().__init__()
        assert out_channels % 4 == 0
        self.mid = out_channels // 4
        self.conv = nn.Conv2d(in_channels, self.mid, 1, groups=3)
        self.up = nn.Conv2d(self.mid, out_channels, 1)
        self.norm = nn.GroupNorm(num_groups, out_channels)
    def forward(self, x):
        return self.norm(self.up(self.conv(x)))"""
    path = write_problem(tmp_path, "batch_size = 12\nin_channels = 240\nout_channels = 480\nheight = width = 16",
                         model=model, inputs="torch.rand(batch_size, in_channels, height, width)",
                         init="in_channels, out_channels")
    changes = load_problem(path).variant().changes
    # in_channels: a multiple of 3 (groups); out_channels // 4 too, and out_channels of 4: 12 * 21; the batch
    # and the image are divided by nothing and become odd
    assert changes == {"batch_size": (12, 7), "in_channels": (240, 123), "out_channels": (480, 252),
                       "height": (16, 9), "width": (16, 9)}
    run_on_meta(load_problem(path).variant().source)


def test_variant_of_the_test_problems():
    source, changes, changes_parameters = load_problem(PROBLEMS / "conv_relu_bias.py").variant()
    assert changes == {"batch_size": (2, 3), "in_channels": (3, 5), "out_channels": (8, 5), "height": (12, 7),
                       "width": (12, 7)}
    assert changes_parameters and "batch_size = 3" in source and "height = 7" in source
    assert load_problem(PROBLEMS / "row_sum.py").variant() == (
        load_problem(PROBLEMS / "row_sum.py").variant().source, {"batch_size": (8, 5), "dim1": (300, 151)}, False)


def test_variant_only_changes_the_named_constants(tmp_path):
    path = write_problem(tmp_path, "batch_size = 16\nq_len = 128\nheads = 8", inputs="torch.rand(batch_size)")
    assert load_problem(path).variant({"q_len", "heads"}).changes == {"q_len": (128, 65), "heads": (8, 5)}
    assert load_problem(path).variant({"nothing"}) is None


@pytest.mark.parametrize("value, multiple, expected", [
    (12, 1, 7), (300, 1, 151), (6, 1, 3), (10, 1, 5), (4, 1, 3),  # odd, about half
    (2, 1, 3), (3, 1, 5),  # halving would reach the broadcast size 1
    (64, 8, 40), (4096, 512, 2560), (16, 8, 8), (24, 8, 8), (8, 8, 8),  # an odd number of multiples
    (30, 4, 15),  # the problem as written is not a multiple: not enforced
])
def test_second_value(value, multiple, expected):
    assert second_value(value, multiple) == expected
