"""Rules for C++/CUDA text handed to load_inline: it lives in string constants and is scanned as text."""
from __future__ import annotations

import ast
import re

# Tokens that mean a library does the work or the harness is reached.
CPP_BANNED = {
    r"\bcublas\w*": "calls cuBLAS instead of its own kernel",
    r"\bcudnn\w*": "calls cuDNN instead of its own kernel",
    r"\bcudaStreamCreate\w*|\bgetStreamFromPool\b|\bcudaStreamBeginCapture\b": "runs work on another CUDA stream",
    r"\bstd::thread\b|\bpthread_create\b|\bstd::async\b": "starts threads",
    r"\bfopen\b|\bstd::ifstream\b|\bstd::ofstream\b|\bgetenv\b|\bdlopen\b|\bpopen\b|\bsystem\s*\(": "touches files, "
    "environment or processes",
    r"\b(?:at|torch)::(?:matmul|mm|bmm|addmm|conv\w*|linear|softmax|log_softmax|layer_norm|batch_norm|"
    r"scaled_dot_product_attention|einsum)\b": "calls a PyTorch op from C++ instead of its own kernel",
}


def check_cpp_strings(tree: ast.Module) -> list[str]:
    """Scan every string constant that looks like C++ (comments stripped)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ("{" in node.value or "#include"
                                                                                 in node.value):
            code = re.sub(r"//[^\n]*|/\*.*?\*/", "", node.value, flags=re.S)
            for pattern, why in CPP_BANNED.items():
                match = re.search(pattern, code)
                if match:
                    message = f"line {node.lineno}: C++ source uses {match.group(0)}: {why}"
                    if message not in found:
                        found.append(message)
    return found
