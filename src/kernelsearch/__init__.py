"""kernelsearch: fast GPU kernels that a strict verifier has proven correct."""
__version__ = "0.1.0"
