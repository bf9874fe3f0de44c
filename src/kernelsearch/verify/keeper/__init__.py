"""The answer keeper: a process beside each worker that computes the reference's answers and compares the
candidate's outputs with them, so that no answer ever exists where the candidate runs (process.py). The worker
speaks to it over a socket (link.py: JSON and raw tensor bytes, or CUDA IPC handles); it keeps answers between the
jobs of one problem where recomputing them would cost more (references.py)."""
