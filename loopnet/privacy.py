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

import functools
import logging

import numpy as np


def default_delta(n):
    """δ = 10^−k, the largest power of ten below 1/n (the usual δ ≪ 1/n)."""
    k = 1
    while 10.0 ** -k >= 1.0 / n:
        k += 1
    return 10.0 ** -k


def epsilon(noise_multiplier, q, steps, delta):
    """ε of ``steps`` steps of the sampled Gaussian mechanism (σ, q) at this δ (RDP accountant)."""
    try:
        from dp_accounting.rdp.rdp_privacy_accountant import compute_epsilon
    except ImportError:
        return _opacus_epsilon(noise_multiplier, q, steps, delta)
    one_step = _rdp_of_one_step(float(noise_multiplier), float(q))
    if one_step is None:            # pragma: no cover - a dp-accounting without _orders/_rdp
        return float(_accountant(noise_multiplier, q, steps).get_epsilon(delta))
    orders, rdp = one_step
    return float(compute_epsilon(orders, int(steps) * rdp, delta)[0])


@functools.lru_cache(maxsize=32)
def _rdp_of_one_step(noise_multiplier, q):
    """(orders, RDP of one step at each order) of ``RdpAccountant().compose(event, 1)``.

    The accountant's RDP after ``compose(event, T)`` is 0 + T·(RDP of one step) (it adds
    ``count * _compute_rdp(...)`` to zeros), so ``compute_epsilon(orders, T·rdp, δ)`` is
    its ``get_epsilon(δ)`` bit for bit (tests/test_dp.py), while the RDP itself (~40 ms:
    a series per Rényi order) is computed once per (σ, q) instead of after every epoch.
    None when the accountant no longer keeps ``_orders``/``_rdp`` (then every call composes).
    """
    accountant = _accountant(noise_multiplier, q, 1)
    try:
        return (np.array(accountant._orders, dtype=np.float64),
                np.array(accountant._rdp, dtype=np.float64))
    except AttributeError:          # pragma: no cover - a future dp-accounting
        return None


def _accountant(noise_multiplier, q, steps):
    """dp-accounting's ``RdpAccountant`` after ``steps`` steps of the sampled Gaussian (σ, q)."""
    import dp_accounting
    event = dp_accounting.PoissonSampledDpEvent(
        q, dp_accounting.GaussianDpEvent(noise_multiplier))
    accountant = dp_accounting.rdp.RdpAccountant()
    absl = logging.getLogger("absl")     # it logs each Rényi order it leaves out
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        accountant.compose(event, int(steps))
    finally:
        absl.setLevel(level)
    return accountant


def _opacus_epsilon(noise_multiplier, q, steps, delta):
    """ε from Opacus' ``RDPAccountant`` when dp-accounting is missing."""
    try:
        from opacus.accountants import RDPAccountant
    except ImportError:
        raise ImportError("the privacy accountant needs the 'dp-accounting' package "
                          "(pip install 'loopnet[dp]') or opacus") from None
    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, q, int(steps))]
    return float(accountant.get_epsilon(delta))
