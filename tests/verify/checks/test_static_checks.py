"""The candidate source rules, checked on the syntax tree before anything runs."""
from pathlib import Path

import pytest

from ...conftest import CANDIDATES, REPO
from kernelsearch.attention.generate import generate
from kernelsearch.attention.spec import load_spec
from kernelsearch.verify.checks.static_checks import check_source

EXAMPLES = REPO / "examples" / "attention"

HEADER = "import torch\nimport torch.nn as nn\nimport triton\nimport triton.language as tl\n"
MODEL = "\nclass ModelNew(nn.Module):\n    def forward(self, x):\n        return x\n"


@pytest.mark.parametrize("name", ["add_relu_triton", "matmul_triton", "softmax_triton", "row_sum_triton",
                                  "cross_entropy_triton", "conv_relu_bias_partial"])
def test_honest_candidates_pass(name):
    report = check_source((CANDIDATES / f"{name}.py").read_text())
    assert report.ok, report.violations
    assert report.language == "triton"


@pytest.mark.parametrize("snippet, expected", [
    ("import os", "imports os"),
    ("import sys", "imports sys"),
    ("from inspect import currentframe", "imports inspect"),
    ("import gc", "imports gc"),
    ("import ctypes", "imports ctypes"),
    ("import threading", "imports threading"),
    ("import socket", "imports socket"),
    ("import time", "imports time"),
    ("torch.cuda.synchronize = lambda: None", "assigns to torch.cuda.synchronize"),
    ("tl.dot = None", "assigns to triton.language.dot"),
    ("torch.backends.cuda.matmul.allow_tf32 = True", "torch.backends"),
    ("torch.set_float32_matmul_precision('medium')", "changes matmul precision"),
    ("s = torch.cuda.Stream()", "another CUDA stream"),
    ("from torch.cuda import Stream", "another CUDA stream"),
    ("g = torch.cuda.CUDAGraph()", "CUDA graph"),
    ("f = torch.compile(lambda x: x)", "torch.compile"),
    ("torch.compiler.set_stance('force_eager')", "the torch.compile baseline's stance"),
    ("from torch.compiler import reset", "uses torch.compiler"),
    ("x = eval('1')", "uses eval()"),
    ("x = open('f').read()", "uses open()"),
    ("x = __import__('os')", "uses __import__()"),
    ("f = (lambda: 0).__globals__", ".__globals__"),
    ("setattr(torch, 'relu', None)", "setattr() on something other than self"),
    ("f = getattr(torch, 'compile')", "dynamic lookup"),
    ("try:\n    pass\nexcept Exception:\n    pass", "try/except that does not re-raise"),
    ("class Lazy(torch.Tensor):\n    pass", "subclasses torch.Tensor"),
    ("class ModelNew2(Model):\n    pass", "reference Model"),
    ("from .helpers import k", "relative import"),
    ("src = 'void f() { cublasSgemm(h); }'", "cuBLAS"),
    ("src = 'void f() { cudaStream_t s; cudaStreamCreate(&s); }'", "another CUDA stream"),
    ("src = 'torch::Tensor f(torch::Tensor a) { return at::matmul(a, a); }'", "PyTorch op from C++"),
    ("src = 'void f() { auto k = getenv(\"KEY\"); }'", "environment"),
    ("exit(0)", "ends the process"),
])
def test_each_rule_names_what_the_candidate_did(snippet, expected):
    report = check_source(HEADER + snippet + "\n" + MODEL)
    assert not report.ok
    assert any(expected in v for v in report.violations), report.violations


def test_reraising_try_and_self_setattr_are_allowed():
    source = HEADER + "try:\n    x = 1\nexcept ValueError:\n    raise\n" + MODEL.replace(
        "return x", "setattr(self, 'y', 1)\n        return x")
    assert check_source(source).ok


def test_torch_compiler_s_questions_are_allowed():
    # generated attention asks whether it is being compiled to pick its path; asking changes nothing
    source = HEADER + "inside = torch.compiler.is_compiling() or torch.compiler.is_exporting()\n" + MODEL
    assert check_source(source).ok, check_source(source).violations


def test_comments_in_cuda_source_do_not_count():
    source = HEADER + "src = '''// no cublas here\n__global__ void k() {}'''\n" + MODEL
    assert check_source(source).ok


def test_syntax_error_and_missing_model_new():
    assert check_source("def f(:\n").syntax_error.startswith("line 1")
    report = check_source(HEADER + "x = 1\n")
    assert report.syntax_error is None and not report.has_model_new and not report.ok


def test_load_inline_marks_a_cuda_candidate():
    source = "import torch\nfrom torch.utils.cpp_extension import load_inline\n" + MODEL.replace(
        "nn.Module", "torch.nn.Module")
    report = check_source(source)
    assert report.ok, report.violations
    assert report.language == "cuda"


# Scopes: a name that a function binds is not the builtin it shadows ---------------------------------------

@pytest.mark.parametrize("snippet", [
    "def forward(self, input):\n    return input + 1",
    "def f(x):\n    vars = x.shape\n    return vars",
    "def f(xs):\n    for input in xs:\n        xs = input",
    "def f(path, open=None):\n    return open",
    "def f(x):\n    compile = x > 0\n    return compile",
    "def f(exit, eval):\n    return exit + eval",
    "def f(xs):\n    return [input for input in xs] + [vars * 2 for vars in xs]",
    "def f(xs):\n    return sum(input for input in xs), {vars: 1 for vars in xs}",
    "g = lambda eval: eval + 1",
    "fs = [lambda input: input for _ in range(2)]",
    "def f(open):\n    def g():\n        return open\n    return g",
    "def f(open):\n    def g():\n        nonlocal open\n        open = 1\n    return g",
    "def f():\n    try:\n        x = 1\n    except ValueError as exit:\n        raise\n    return exit",
    "def f():\n    [(input := 1) for _ in range(2)]\n    return input",
    "compile = 3\ndef f():\n    return compile",
    "from torch import exp as vars\ndef f(x):\n    return vars(x)",
    "class A:\n    input = 1\n    y = input",
])
def test_shadowed_builtins_pass(snippet):
    report = check_source(HEADER + snippet + "\n" + MODEL)
    assert report.violations == []


@pytest.mark.parametrize("snippet, expected", [
    ("def f(x=open):\n    return x", "uses open()"),  # a default is evaluated outside the function
    ("g = lambda x=input: x", "uses input()"),
    # symtable gives lines, not columns: two lambdas on one line are both read strictly
    ("f, g = (lambda input: input), (lambda: input())", "uses input()"),
    ("def f():\n    return compile\ncompile = 3", "uses compile()"),  # f may run before the module binds it
    ("if True:\n    open = 1\ndef f():\n    return open('x')", "uses open()"),  # not a sure binding
    ("open = 1\ndel open\ndef f():\n    return open('x')", "uses open()"),
    ("open = open", "uses open()"),
    ("def f():\n    global input\n    return input()", "uses input()"),
    ("class A:\n    input = 1\n    def m(self):\n        return input()", "uses input()"),  # methods skip the class
    ("class A:\n    y = input\n    input = 1", "uses input()"),
    ("class A:\n    input = 1\n    ys = [input for _ in range(3)]", "uses input()"),
    ("def f(xs):\n    y = [input for input in xs]\n    return input()", "uses input()"),
    ("b = __builtins__['open']", "uses __builtins__"),
    ("d = __loader__.get_data('x')", "uses __loader__"),
])
def test_builtins_that_are_not_shadowed_are_flagged(snippet, expected):
    report = check_source(HEADER + snippet + "\n" + MODEL)
    assert any(expected in v for v in report.violations), report.violations


def test_shadowing_in_one_function_does_not_unban_the_builtin_in_another():
    report = check_source(HEADER + "def f(input):\n    return input\ndef g():\n    return input()\n" + MODEL)
    assert report.violations == ["line 8: uses input(): reads standard input"]  # g's line, not f's


# Main guard: code that never runs on import is not judged -------------------------------------------------

SELF_TEST = "\n    import sys\n    import time\n    t = time.perf_counter()\n    print(ModelNew()(1), open('log'), sys.argv)\n"


@pytest.mark.parametrize("guard", ['if __name__ == "__main__":', "if '__main__' == __name__:"])
def test_main_guard_self_test_passes(guard):
    report = check_source(HEADER + MODEL + guard + SELF_TEST)
    assert report.ok, report.violations


@pytest.mark.parametrize("source, expected", [
    # not at module top level: it is checked like any other code
    (HEADER + MODEL + "def self_test():\n    if __name__ == '__main__':\n        import os\n", "imports os"),
    (HEADER + MODEL + "if True:\n    if __name__ == '__main__':\n        import os\n", "imports os"),
    # the else branch runs on import
    (HEADER + MODEL + "if __name__ == '__main__':\n    pass\nelse:\n    import os\n", "imports os"),
    # a module that can rebind __name__ could make its guard true
    (HEADER + MODEL + "__name__ = '__main__'\nif __name__ == '__main__':\n    import os\n", "imports os"),
    (HEADER + MODEL + "def f():\n    global __name__\n    __name__ = '__main__'\n"
                      "if __name__ == '__main__':\n    import os\n", "imports os"),
    # a binding made only under the guard does not shadow the builtin on import
    (HEADER + MODEL + "if __name__ == '__main__':\n    open = print\ndef f():\n    return open('x')\n",
     "uses open()"),
    # ModelNew defined only under the guard does not exist on import
    (HEADER + "if __name__ == '__main__':" + MODEL.replace("\n", "\n    "), None),
])
def test_main_guard_is_only_skipped_at_top_level(source, expected):
    report = check_source(source)
    if expected is None:
        assert not report.has_model_new
    else:
        assert any(expected in v for v in report.violations), report.violations


# Modules reached through attributes, with no import statement --------------------------------------------

@pytest.mark.parametrize("snippet, expected", [
    ("torch.serialization.os.system('id')", "reaches module os through an attribute (torch.serialization.os)"),
    ("triton.runtime.cache.os.system('id')", "reaches module os through an attribute (triton.runtime.cache.os)"),
    ("def f(x):\n    return x.os", "reaches module os"),
    ("def f(x):\n    return x.sys.argv", "reaches module sys"),
    ("import numpy as np\nv = np.sys.version", "reaches module sys through an attribute (np.sys)"),
    ("def f(x):\n    return x.subprocess.run(['id'])", "reaches module subprocess"),
    ("m = torch.x.os.sys.modules['importlib']", "reads torch.x.os.sys.modules[...]"),
    ("def f(x):\n    return x.modules['os']", "reads x.modules[...]"),
    ("def f(x):\n    return x.__import__('os')", "reads .__import__"),
    ("def f(x):\n    return x.builtins.open", "reaches module builtins"),
    ("def f(x):\n    return x.importlib.import_module('os')", "reaches module importlib"),
    ("def f(x):\n    return x.import_module('os')", "reads .import_module"),
    ("def f(x):\n    return x._sys._getframe(1)", "reaches module _sys"),
    ("def f(x):\n    return x._sys._getframe(1)", "reads ._getframe"),
    *[(f"def f(x):\n    return x.{name}", f"reaches module {name}") for name in
      ["ctypes", "gc", "inspect", "socket", "shutil", "pathlib", "io", "signal", "threading", "multiprocessing",
       "pickle", "time"]],
    ("def f(x):\n    return getattr(x, 'os')", "getattr() looks up 'os' by name"),
    ("def f(x):\n    return getattr(x, '__globals__')", "getattr() looks up '__globals__' by name"),
    ("def f(x):\n    return getattr(x, 'modules')['os']", "getattr() looks up 'modules' by name"),
    ("def f(x):\n    return x.__getattribute__('sys')", "__getattribute__() looks up 'sys' by name"),
    ("import operator\nget = operator.attrgetter('serialization.os')", "attrgetter() looks up 'os' by name"),
    ("def f(x, name):\n    return getattr(x, name)", "getattr() with a computed name"),
    ("import numpy as np\na = np.load('cache.npy')", "uses numpy.load: reads files"),
])
def test_reaching_a_module_through_attributes_is_flagged(snippet, expected):
    report = check_source(HEADER + snippet + "\n" + MODEL)
    assert any(expected in v for v in report.violations), report.violations


@pytest.mark.parametrize("snippet", [
    "def f(x):\n    return tl.math.exp(x) + tl.math.log2(x)",
    "def f(x):\n    return torch.nn.functional.relu(x).shape[0]",
    "def f(x):\n    return torch.cuda.is_available() and triton.language.constexpr(1)",
    "class A:\n    def __init__(self):\n        self.io_size, self.os_page, self.system = 3, 4, 5",
    "class A(nn.Module):\n    def f(self):\n        return [m for m in self.modules()]",
    "class A:\n    def f(self, i):\n        return getattr(self, f'conv{i}')",
    "def f(x):\n    return getattr(x, 'shape'), hasattr(x, 'dtype')",
])
def test_kernel_attributes_pass(snippet):
    report = check_source(HEADER + snippet + "\n" + MODEL)
    assert report.violations == []


def _honest_files():
    cuda_honest = ["add_relu_cuda.py", "compile_error_cuda.py", "empty_output_cuda.py"]  # the others are hacks
    return sorted(CANDIDATES.glob("*.py")) + [CANDIDATES / "cuda" / name for name in cuda_honest]


@pytest.mark.parametrize("path", _honest_files(), ids=lambda p: p.name)
def test_every_honest_candidate_file_has_no_violations(path):
    assert check_source(path.read_text(), path.name).violations == []


@pytest.mark.parametrize("spec", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.stem)
def test_generated_attention_kernels_have_no_violations(spec):
    report = check_source(generate(load_spec(spec)).source)
    assert report.ok, report.violations
    assert report.language == "triton"


def test_candidate_with_shadowing_names_and_a_self_test_is_correct(verify):
    v = verify("elementwise_add_relu", CANDIDATES / "add_relu_shadowing_names.py")
    assert v.status == "correct", v.message


OP = '@{path}("{name}", mutates_args=())\ndef f(x: torch.Tensor) -> torch.Tensor:\n    return x\n'


@pytest.mark.parametrize("snippet", [OP.format(path="torch.library.custom_op", name="myops::f"),
                                     "from torch.library import custom_op\n" + OP.format(path="custom_op",
                                                                                          name="myops::f")])
def test_a_custom_op_of_its_own_namespace_is_allowed(snippet):
    report = check_source(HEADER + snippet + MODEL)
    assert report.ok, report.violations


@pytest.mark.parametrize("snippet, expected", [
    (OP.format(path="torch.library.custom_op", name="aten::f"), "namespace 'aten', which torch"),
    (OP.format(path="torch.library.custom_op", name="prims::f"), "namespace 'prims', which torch"),
    (OP.format(path="torch.library.custom_op", name="torchvision::f"), "namespace 'torchvision'"),
    (OP.format(path="torch.library.custom_op", name="f"), "must be \"namespace::name\""),
    ('n = "aten::f"\nf = torch.library.custom_op(n, mutates_args=())', "computed name"),
    ("make = torch.library.custom_op", "other than in a call"),
    ("from torch.library import custom_op, Library", "uses torch.library: registers operators"),
    ('torch.library.impl("aten::mm", "CUDA")', "uses torch.library: registers operators"),
    ('lib = torch.library.Library("myops", "FRAGMENT")', "uses torch.library: registers operators"),
    (OP.format(path="torch.library.custom_op", name="myops::f") + 'f._lib.impl("g", None, "CPU")', "._lib"),
])
def test_the_rest_of_torch_library_is_refused(snippet, expected):
    report = check_source(HEADER + snippet + MODEL)
    assert any(expected in v for v in report.violations), report.violations


def test_the_list_of_torchs_operator_namespaces_covers_this_torch():
    # the checks run where torch is never imported (the pool), so the list is written out: a torch that adds a
    # namespace must add it there, or a candidate could add an operator to it. Read in a fresh process: this one
    # may hold the operators of generated attention files.
    import subprocess
    import sys

    from kernelsearch.verify.checks.custom_ops import TORCH_NAMESPACES
    listed = subprocess.run([sys.executable, "-c", "import torch, torch._inductor, torch.nn.attention.flex_attention; "
                             "print(' '.join({n.split('::')[0] for n in torch._C._dispatch_get_all_op_names()}))"],
                            capture_output=True, text=True, timeout=300, check=True).stdout.split()
    assert {n for n in listed if not n.startswith("_")} - TORCH_NAMESPACES == set()
