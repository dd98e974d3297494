"""The privacy spent by DP-SGD, from a maintained accountant (never a home-made one).

DP-SGD (Abadi et al. 2016) with noise multiplier σ, sampling rate q (each example
in each step's batch with probability q) and T steps is T compositions of the
sampled Gaussian mechanism.  Its (ε, δ) is computed by the Rényi-DP accountant of
Google's ``dp-accounting`` package (``pip install loopnet[dp]``):
``RdpAccountant().compose(PoissonSampledDpEvent(q, GaussianDpEvent(σ)), T)``,
then ``get_epsilon(δ)``; or, when that package is missing and Opacus is
installed, Opacus' ``RDPAccountant``.

With ``sampling="shuffle"`` (fixed-size batches of a shuffled epoch) the same
Poisson analysis is used with q = batch_size / n, as Opacus and TensorFlow
Privacy report it; strictly, the guarantee holds for ``sampling="poisson"``.
"""

import logging


def default_delta(n):
    """δ = 10^−k, the largest power of ten below 1/n (the usual δ ≪ 1/n)."""
    k = 1
    while 10.0 ** -k >= 1.0 / n:
        k += 1
    return 10.0 ** -k


def epsilon(noise_multiplier, q, steps, delta):
    """ε of ``steps`` steps of the sampled Gaussian mechanism (σ, q) at this δ (RDP accountant)."""
    try:
        import dp_accounting
    except ImportError:
        dp_accounting = None
    if dp_accounting is not None:
        event = dp_accounting.PoissonSampledDpEvent(
            q, dp_accounting.GaussianDpEvent(noise_multiplier))
        accountant = dp_accounting.rdp.RdpAccountant()
        absl = logging.getLogger("absl")     # it logs each Rényi order it leaves out
        level = absl.level
        absl.setLevel(logging.ERROR)
        try:
            accountant.compose(event, int(steps))
            return float(accountant.get_epsilon(delta))
        finally:
            absl.setLevel(level)
    try:
        from opacus.accountants import RDPAccountant
    except ImportError:
        raise ImportError("the privacy accountant needs the 'dp-accounting' package "
                          "(pip install 'loopnet[dp]') or opacus") from None
    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, q, int(steps))]
    return float(accountant.get_epsilon(delta))
