"""The worker: the process that runs untrusted candidates, one job at a time (process.py), each job's steps top to
bottom (job.py): the static checks, the keeper's first answers and the memory plan, the build, the first call, the
trials, the extra checks (extra_checks.py), the timing (timing_step.py). What it watches while the candidate runs is
in runtime_guards.py; CUDA C++ on a machine without a GPU is compiled only (compile_only.py); on a GPU it is built
off the worker first (builder.py, a process of its own; cuda_builds.py, the build cache); problems too large for the
interpreter are refused (work_estimate.py). Only the job writes the verdict: checks return what they found."""
