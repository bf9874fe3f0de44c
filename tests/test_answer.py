"""Reading model answers: reasoning in its three forms, and the kernel out of messy replies."""
from __future__ import annotations

import pytest

from kernelsearch.llm.answer import extract_code, split_reasoning

MODEL_NEW = "import torch\n\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n        return kernel(x)\n"
KERNEL = "import triton\n\n@triton.jit\ndef kernel(x_ptr):\n    pass\n"


@pytest.mark.parametrize("content, field, reasoning, answer", [
    ("the answer", "", "", "the answer"),
    ("the answer", "field thoughts", "field thoughts", "the answer"),
    ("<think>inline thoughts</think>\nthe answer", "", "inline thoughts", "the answer"),
    ("thoughts without an opening tag</think>the answer", "", "thoughts without an opening tag", "the answer"),
    ("<think>cut off while thinking", "", "cut off while thinking", ""),
    ("<think>inline</think>answer", "field", "field\n\ninline", "answer"),
])
def test_split_reasoning(content, field, reasoning, answer):
    assert split_reasoning(content, field) == (reasoning, answer)


def test_picks_the_block_that_defines_model_new():
    answer = f"First the reference:\n```python\nclass Model: pass\n```\nNow mine:\n```python\n{MODEL_NEW}```\n"
    assert extract_code(answer).code.strip() == MODEL_NEW.strip()


def test_the_last_revision_wins():
    revised = MODEL_NEW.replace("kernel(x)", "kernel(x) * 1")
    answer = f"```python\n{MODEL_NEW}```\nOops, fixed:\n```py\n{revised}```"
    assert "kernel(x) * 1" in extract_code(answer).code


def test_kernel_and_model_in_separate_blocks_are_joined():
    answer = f"The kernel:\n```python\n{KERNEL}```\nThe module:\n```python\n{MODEL_NEW}```\n"
    extracted = extract_code(answer)
    assert extracted.code.index("def kernel") < extracted.code.index("class ModelNew")
    assert "joined" in extracted.note


def test_unrelated_blocks_are_not_joined():
    answer = f"```python\nprint('usage example')\n```\n```python\n{MODEL_NEW.replace('kernel(x)', 'x')}```"
    assert "print" not in extract_code(answer).code


def test_other_languages_and_tilde_fences():
    answer = f"```cuda\n__global__ void k() {{}}\n```\n~~~python\n{MODEL_NEW}~~~\n"
    assert extract_code(answer).code.strip() == MODEL_NEW.strip()


def test_unfenced_code_is_accepted():
    assert extract_code(MODEL_NEW).code.strip() == MODEL_NEW.strip()


@pytest.mark.parametrize("answer, truncated, note", [
    ("I am not sure how to do this.", False, "no code block"),
    ("```python\nprint(1)\n```", False, "no code block defines class ModelNew"),
    (f"```python\n{MODEL_NEW[:40]}", True, "cut off at max_tokens"),
    (f"```python\n{MODEL_NEW[:40]}", False, "never closed"),
    ("Let me think about tiling", True, "cut off at max_tokens before any code"),
])
def test_answers_without_usable_code_say_why(answer, truncated, note):
    extracted = extract_code(answer, truncated)
    assert extracted.code is None
    assert note in extracted.note


def test_a_syntax_error_is_still_extracted_for_the_verifier_to_report():
    broken = "class ModelNew(nn.Module):\n    def forward(self, x)\n        return x\n"
    assert extract_code(f"```python\n{broken}```").code.strip() == broken.strip()
