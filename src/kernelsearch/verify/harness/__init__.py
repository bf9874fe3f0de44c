"""What the worker and the answer keeper share: loading a problem and building its models from a seed (modules.py),
the calls a job makes with their checks (calls.py), the memory plan and the poison (memory.py), comparing outputs a
chunk at a time (correctness.py, chunks.py, mismatch.py), timing on the GPU (gpu_timing.py), naming the kernels a
call ran (gpu_kernels.py), and where a job's time went (stopwatch.py)."""
