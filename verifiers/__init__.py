"""verirl verifiers: reward checkers behind one interface (see `verifiers.base`).

Importing the package registers the built-in verifiers; third-party ones come from the
`verirl.verifiers` entry-point group on first lookup.
"""

from verifiers.base import (
    VERIFIER_FAULTS,
    Task,
    Verdict,
    Verifier,
    VerifierError,
    get_verifier,
    list_verifiers,
    register_verifier,
)
from verifiers.composite import CompositeVerifier
from verifiers.interop import as_trl_reward, as_verl_reward

# Built-in verifiers register themselves on import, after the public API above is bound; an
# import sorter would hoist them above it and shuffle them, so it is kept off this block.
# isort: off
from verifiers import format as _format  # noqa: F401
from verifiers import math as _math  # noqa: F401
from verifiers import process as _process  # noqa: F401
from verifiers import code as _code  # noqa: F401
from verifiers import reasoning_gym as _reasoning_gym  # noqa: F401  (reasoning-gym itself: imported on use)
from verifiers.remote import RemoteVerifier  # stdlib HTTP only: cheap to import
# isort: on

__all__ = [
    "VERIFIER_FAULTS",
    "CompositeVerifier",
    "RemoteVerifier",
    "Task",
    "Verdict",
    "Verifier",
    "VerifierError",
    "as_trl_reward",
    "as_verl_reward",
    "get_verifier",
    "list_verifiers",
    "register_verifier",
]
