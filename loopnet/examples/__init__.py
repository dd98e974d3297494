"""Runnable, tested examples of the derivations of backpropagation.

Run any of them with ``python -m loopnet.examples.<name>``; each module's ``main()``
prints its working and returns the numbers it checked (``tests/test_examples.py``
asserts them).

==============  =================================================================
module          what it shows
==============  =================================================================
chain           one neuron per layer (3Blue1Brown): C0 = (a^L − y)²,
                ∂C0/∂w^L = a^{L−1} σ'(z^L) 2(a^L − y), with its numbers
bp_equations    Nielsen's BP1–BP4 checked numerically on a random network
hand_worked     a 2-2-2 network worked by hand, every number written down,
                matching ``loopnet trace`` to all printed digits
matrix_form     the matrix form (δ^l = ((W^{l+1})ᵀ δ^{l+1}) ⊙ σ'(z^l), batched
                Z = A Wᵀ + b) from :mod:`loopnet.reference` equals the loop form
==============  =================================================================
"""

NAMES = ("chain", "bp_equations", "hand_worked", "matrix_form")


def run_main(main):
    """Run an example's ``main()`` as a script: quiet when its reader goes away
    (``python -m loopnet.examples.bp_equations | head -3``: BrokenPipeError) or on Ctrl-C."""
    import os
    import sys
    try:
        main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit: point it at devnull.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
