"""Numba options in one place, and what the target machine decides (register tiles, panel size).

Every compiled function in loopnet is decorated with :func:`jit`, with :func:`jit_inner`
when only compiled code ever calls it (no CPython wrapper: less to compile), or with
:func:`jit_linked` / :func:`pjit_linked` (the latter may contain ``prange``) for the
engine's helpers, whose code is optimised only inside the driver that calls them
(:mod:`loopnet._linking`).
``cache=True`` keeps compiled code on disk so a second process starts in well under a
second.

Floating-point flags
--------------------
Every compiled function may use ``contract``: LLVM fuses ``a*b + c`` into
one FMA instruction.  Functions decorated with :func:`jit_sums` — the kernels
with long dot products, z_j = Σ_k w_jk a_k (kernels.forward_layer, and its
fast twin tiles.forward_layer3 with dot_tile, dot_row) — also use ``reassoc``, which lets LLVM split such
a sum into partial sums that run in SIMD lanes.
Without it the sum is one dependent chain of additions and the forward pass of
[784, 30, 10] runs about 10× slower (21 µs instead of 2 µs per example on
layer 1).  ``reassoc`` is NOT given to everything: it also licenses rewrites
such as (η/m)·g → (η·g)/m, which put a division in every step of the
parameter update (measured: the update loop was left scalar).

Both flags change the last bits of a result compared with a plain Python
loop, but never between runs or thread counts: every number is computed by
the same compiled code whatever ``NUMBA_NUM_THREADS`` is (see
:mod:`loopnet.engine`), and results stay within 1e-10 relative of the NumPy
reference (tested).  ``nnan``/``ninf`` are never used: NaN must stay visible
to the divergence checks.  ``error_model="numpy"``: a division by zero gives
inf or NaN (caught by those checks) instead of raising, which spares every
division its check and Numba the compile time of the exception code.

Cache invalidation
------------------
Numba alone invalidates a cached function when ITS source file changes, not
when a kernel it inlines changes in another file: after an edit to
kernels.py, engine.py's cached code would still run the old kernel (wrong
numbers, or a crash when a data layout changed).  :class:`_CoreStampLocator`
therefore stamps every cache entry of loopnet with a hash of all the modules
that hold compiled code, as well as the function's own file; any edit to
them recompiles everything on the next run.  The cache is kept per user
(``$NUMBA_CACHE_DIR`` if set), not inside the installed package.  An installed release never
changes, so users only ever pay the compile once.
"""

import contextlib
import hashlib
import importlib.util
import os
import sys
import types
import warnings

import llvmlite.binding
import numba
from numba.core.caching import CacheImpl, UserWideCacheLocator
from numba.core.registry import cpu_target

try:
    from numba.core.runtime import rtsys as _rtsys
except ImportError:     # pragma: no cover - Numba moved its runtime
    _rtsys = None

from . import _linking

# Targets named by NUMBA_CPU_NAME alone that have AVX-512 (32 vector registers); see
# vector_registers.
AVX512_CPUS = ("skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
               "icelake-server", "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids",
               "graniterapids", "graniterapids-d", "alderlake-avx512", "znver4", "znver5",
               "x86-64-v4", "knl", "knm")

FASTMATH = {"contract"}
FASTMATH_SUMS = {"contract", "reassoc"}

OPTIONS = dict(cache=True, nogil=True, error_model="numpy")

# Modules whose compiled functions are inlined into one another, and the one that decides
# how they are linked and optimised (its changes change the machine code).
CORE_MODULES = ("_jit.py", "_linking.py", "random.py", "activations.py", "costs.py", "kernels.py",
                "simd.py", "tiles.py", "optim.py", "fpenv.py", "engine.py")


def vector_registers():
    """SIMD registers of the CPU Numba compiles for: 32 with AVX-512, else 16.

    Decided as Numba and LLVM decide the target: the features Numba passes
    (``NUMBA_CPU_FEATURES`` if set, else the host's own, whatever ``NUMBA_CPU_NAME``
    says) where they turn AVX-512 on or off, else the CPU they name (e.g.
    ``NUMBA_CPU_NAME=sapphirerapids NUMBA_CPU_FEATURES=-prefer-256-bit``).  Register tiles
    are sized to fit (:mod:`loopnet.tiles`).  Numba keys its cache by target CPU and
    features, so code compiled for one tile size is never loaded for a target meant for
    the other.
    """
    features = numba.config.CPU_FEATURES
    flags = (_host_features() if features is None else features).split(",")
    if "+avx512f" in flags or "-avx512f" in flags:
        return 32 if "+avx512f" in flags else 16
    name = str(numba.config.CPU_NAME or "host").lower()
    if name == "host":
        return 32 if "+avx512f" in _host_features().split(",") else 16
    return 32 if name in AVX512_CPUS else 16


def _host_features():
    """This CPU's features as Numba passes them to LLVM ('' where LLVM cannot read them)."""
    try:
        return numba.core.codegen.get_host_cpu_features()
    except Exception:      # noqa: BLE001 - an unknown host: the smaller tiles fit everywhere
        return ""


# Targets whose cores run a 512-bit FMA at full width (Intel's AVX-512 server cores, Zen 5;
# LLVM names the Xeon VM of profiles/README's thirteenth round `rocketlake`): there the
# engine's layer 1 runs the outer-product tiles (see outer_forward).  Zen 4 splits each
# 512-bit FMA in two; there the tiles gained 7 % and whole epochs lost (sixteenth round).
OUTER_CPUS = ("skylake-avx512", "cascadelake", "cooperlake", "icelake-server",
              "sapphirerapids", "emeraldrapids", "graniterapids", "graniterapids-d",
              "rocketlake", "znver5")


def outer_forward():
    """Whether the engine computes layer 1's forward pass with explicit 512-bit vectors
    (``tiles.forward_outer``) rather than the dot-product tiles.

    ``LOOPNET_FORWARD=outer`` or ``dot`` chooses (``outer`` runs on any target, slowly without
    AVX-512: tests and comparisons); unset, the CPU Numba compiles for decides
    (:data:`OUTER_CPUS`).  Never with the JIT off: the vectors need compiled code.
    """
    choice = os.environ.get("LOOPNET_FORWARD", "").strip().lower()
    if choice not in ("", "outer", "dot"):
        raise ValueError(f"LOOPNET_FORWARD must be 'outer' or 'dot' (or unset), not {choice!r}")
    if numba.config.DISABLE_JIT:
        return False
    if choice:
        return choice == "outer"
    if vector_registers() < 32:
        return False
    name = str(numba.config.CPU_NAME or "host").lower()
    if name == "host":
        name = llvmlite.binding.get_host_cpu_name().lower()
    return name in OUTER_CPUS


def wide_tiles():
    """Whether the engine runs its 32-register tiles (:mod:`loopnet.tiles`).

    ``LOOPNET_TILES=wide`` or ``narrow`` chooses (to compare the two on one machine: on a
    32-register target both give the same bits; the wide pair forced onto a 16-register one
    changes the last bits, 1.7e-16 after two epochs of a [64, 37, 10] net on a Zen 3); unset, the
    target's :func:`vector_registers` decide.
    """
    choice = os.environ.get("LOOPNET_TILES", "").strip().lower()
    if choice not in ("", "wide", "narrow"):
        raise ValueError(f"LOOPNET_TILES must be 'wide' or 'narrow' (or unset), not {choice!r}")
    return choice == "wide" if choice else vector_registers() >= 32


# Bytes of w per panel of the engine (loopnet.engine.panel_rows): half of one thread's L2, within
# these bounds; PANEL_UNKNOWN where the L2 cannot be read.  See panel_bytes.
PANEL_MIN, PANEL_MAX, PANEL_UNKNOWN = 64 * 1024, 1024 * 1024, 128 * 1024


def l2_share_bytes(cpu_dir="/sys/devices/system/cpu/cpu0/cache"):
    """One thread's share of the level-2 cache, in bytes: the size Linux reports for CPU 0's
    L2 divided by the CPUs sharing it (two SMT threads share a core's L2; some Intel cores
    share one L2 by four), or None where it is not reported (other systems, some VMs)."""
    try:
        for entry in sorted(os.listdir(cpu_dir)):
            path = os.path.join(cpu_dir, entry)
            if not entry.startswith("index") or _read(path, "level") != "2":
                continue
            if _read(path, "type") not in ("Unified", "Data"):
                continue
            size = _read(path, "size")
            scale = {"K": 1024, "M": 1024 * 1024}.get(size[-1:].upper(), 1)
            sharing = _cpu_count(_read(path, "shared_cpu_list"))
            return int(size.rstrip("KMkm")) * scale // max(1, sharing)
    except (OSError, ValueError):
        pass
    return None


def _read(directory, name):
    with open(os.path.join(directory, name)) as f:
        return f.read().strip()


def _cpu_count(cpu_list):
    """Number of CPUs in a Linux CPU list such as '0-3,8'."""
    count = 0
    for part in cpu_list.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


def panel_bytes():
    """Bytes of w (A1) or of ∂C/∂w (B) per panel of the engine (:func:`loopnet.engine.panel_rows`).

    A panel stays in L2 while a mini-batch's examples pass: half of one thread's L2
    (:func:`l2_share_bytes`), between 64 KiB and 1 MiB, leaving the other half to the
    examples' inputs.  128 KiB where the L2 is unknown.  ``LOOPNET_PANEL_KIB`` overrides (to
    compare sizes on one machine).  No number depends on it (panels hold whole tiles); it is
    passed to the compiled engine as a value (``Arch.panel``), so it costs no compile.
    Measured on a 2-core Xeon with 2 MiB of L2 (profiles/results/panels-intel-xeon-2c.md): W5
    on 2 threads 5-10 % faster with 1 MiB panels than with 128 KiB, slower again with 2 MiB.
    """
    choice = os.environ.get("LOOPNET_PANEL_KIB", "").strip()
    if choice:
        if not choice.isdigit() or int(choice) == 0:
            raise ValueError(f"LOOPNET_PANEL_KIB must be a positive whole number of KiB (or unset), "
                             f"not {choice!r}")
        return int(choice) * 1024
    share = l2_share_bytes()
    if share is None:
        return PANEL_UNKNOWN
    return min(PANEL_MAX, max(PANEL_MIN, share // 2 // 1024 * 1024))


def _core_stamp():
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for name in CORE_MODULES:
        with open(os.path.join(here, name), "rb") as f:
            digest.update(f.read())
    digest.update(b"wide tiles" if wide_tiles() else b"narrow tiles")   # see loopnet.tiles
    digest.update(b"outer forward" if outer_forward() else b"dot forward")
    return digest.hexdigest()


class _CoreStampLocator(UserWideCacheLocator):
    """A per-user cache directory, stamped with the hash of the core modules.

    The cache lives under ``$NUMBA_CACHE_DIR`` when that is set, else in
    Numba's per-user cache directory (e.g. ``~/.cache/numba``), never inside
    the installed package: files written into site-packages/loopnet outlive
    ``pip uninstall`` and can shadow a later editable install.
    """

    core_stamp = _core_stamp()

    def __init__(self, py_func, py_file):
        super().__init__(py_func, py_file)
        if numba.config.CACHE_DIR:
            self._cache_path = os.path.join(numba.config.CACHE_DIR,
                                            self.get_suitable_cache_subpath(py_file))

    def get_source_stamp(self):
        return (self.core_stamp, super().get_source_stamp())


def python_function(fn):
    """The Python function a compiled one was made from (``fn`` itself with the JIT off, where
    ``jit`` returns plain functions)."""
    return getattr(fn, "py_func", fn)


def _compile(fn, **options):
    """``numba.njit(**options)(fn)`` with :class:`_CoreStampLocator` tried first for its cache."""
    usual = CacheImpl._locator_classes
    CacheImpl._locator_classes = [_CoreStampLocator] + list(usual)
    try:
        return _survive_damaged_cache(numba.njit(**options)(fn))
    finally:
        CacheImpl._locator_classes = usual


def _survive_damaged_cache(dispatcher):
    """Treat an unreadable cache entry of ``dispatcher`` as missing: compile again, and say
    once which directory held it.

    Numba itself would raise the unpickling error of a truncated or overwritten ``.nbi`` /
    ``.nbc`` file (a full disk, a killed process, two Numba versions) from the user's call.
    The fresh compile overwrites the damaged entry.
    """
    cache = getattr(dispatcher, "_cache", None)
    load = getattr(cache, "load_overload", None)
    if load is None:
        return dispatcher

    def load_or_none(sig, target_context):
        try:
            data = _load_without_refresh(cache, sig, target_context)
            if data is None:        # a miss: Numba compiles next, with its whole target
                _prepare_target()
            return data
        except Exception as exc:   # noqa: BLE001 - any unreadable entry is a cache miss
            _warn_damaged(getattr(cache, "cache_path", "?"), exc)
            return None

    def save_replacing_damaged(sig, data):
        # Saving reads the index first: a damaged index is removed, then written anew.
        try:
            save(sig, data)
        except Exception as exc:   # noqa: BLE001 - a cache that cannot be written is no cache
            _warn_damaged(getattr(cache, "cache_path", "?"), exc)
            index = getattr(getattr(cache, "_cache_file", None), "_index_path", None)
            with contextlib.suppress(OSError):
                if index:
                    os.remove(index)
                save(sig, data)

    save = cache.save_overload
    cache.load_overload = load_or_none
    cache.save_overload = save_replacing_damaged
    return dispatcher


def _load_without_refresh(cache, sig, target_context):
    """``cache.load_overload(sig, target_context)`` without refreshing the target first.

    Numba refreshes its whole target context before every cache load: it imports and
    registers the implementations of everything it can compile (``numba.np.arraymath``,
    ``numba.cpython.unicode``, ..., about a hundred modules), which only compiling needs:
    half of a cached first fit (0.09 of 0.19 s on a 2-core EPYC) and the 50 ms import of
    ``numba.np.linalg`` (now imported by :func:`_prepare_target` only).  Running
    cached machine code needs only the runtime (NRT: the allocator the code calls), which
    is initialised here.  A miss returns None and the compile that follows refreshes as
    usual.  Where Numba lacks the internals used here, the ordinary load runs.
    """
    private_load = getattr(cache, "_load_overload", None)
    guard = getattr(cache, "_guard_against_spurious_io_errors", None)
    if _rtsys is None or private_load is None or guard is None:
        _prepare_target()
        return cache.load_overload(sig, target_context)
    _rtsys.initialize(target_context)
    with guard():
        return private_load(sig, target_context)
    return None     # the guard swallowed a spurious I/O error (Windows): a miss


_target_ready = []


def _prepare_target():
    """Load Numba's CPU implementations once, without importing ``scipy.linalg`` for them.

    Numba's first load from the cache (or first compile) in a process refreshes its target
    context, which imports ``numba.np.arraymath``, whose import calls
    ``numba.np.linalg.ensure_blas()`` only to set the flag ``arraymath._HAVE_BLAS``: that imports
    ``scipy.linalg`` when SciPy is installed, the largest single cost of a cached start
    (0.3 to 0.5 s on 2-core machines), and loopnet's compiled code calls no BLAS.  Here the
    flag is set from whether SciPy is installed (what ``ensure_blas`` finds on any working
    SciPy) and ``ensure_blas`` is put back before anything could call it for real: every
    ``np.dot`` or ``np.linalg`` a user compiles later still imports SciPy and checks it.
    """
    if _target_ready:
        return
    _target_ready.append(True)
    if "numba.np.arraymath" in sys.modules:     # already loaded (by the user's own Numba code)
        return
    import numba.np.linalg as numba_linalg      # loaded by the refresh below anyway

    real = numba_linalg.ensure_blas
    scipy_installed = importlib.util.find_spec("scipy") is not None

    def ensure_blas_later():
        if not scipy_installed:
            raise ImportError("scipy 0.16+ is required for linear algebra")

    numba_linalg.ensure_blas = ensure_blas_later
    try:
        cpu_target.target_context.refresh()
    finally:
        numba_linalg.ensure_blas = real
        arraymath = sys.modules.get("numba.np.arraymath")
        if arraymath is not None and getattr(arraymath, "ensure_blas", None) is ensure_blas_later:
            arraymath.ensure_blas = real


_damaged_dirs = set()


def _warn_damaged(path, exc):
    if path in _damaged_dirs:
        return
    _damaged_dirs.add(path)
    warnings.warn(f"loopnet: the Numba cache in {path} is damaged ({type(exc).__name__}: "
                  f"{str(exc)[:80]}); compiling again instead (deleting that directory "
                  f"clears it)", RuntimeWarning, stacklevel=3)


def jit(fn):
    """Compile ``fn`` as a serial nopython function."""
    return _compile(fn, fastmath=FASTMATH, **OPTIONS)


def jit_sums(fn):
    """Like :func:`jit`, and let LLVM reassociate ``fn``'s sums into SIMD partial sums."""
    return _compile(fn, fastmath=FASTMATH_SUMS, **OPTIONS)


def jit_inner(fn):
    """Like :func:`jit`, for a function that only compiled code calls: no CPython or C wrapper.

    Every compiled function otherwise gets a wrapper that unboxes its arguments from Python
    objects (for a namedtuple of arrays, a lot of code), which Numba optimises and emits
    with the function and again in every caller it is linked into, though nothing calls
    it.  Measured on the whole engine: about a fifth of the cold compile.  Calling such a
    function from Python is NOT an error Numba catches (it crashes the interpreter), so
    only helpers that Python never calls (tests and profiles included) get it.
    """
    return _compile(fn, fastmath=FASTMATH, no_cpython_wrapper=True, no_cfunc_wrapper=True, **OPTIONS)


def _compile_linked(fn, **options):
    """``fn`` compiled without wrappers as a linked helper (:mod:`loopnet._linking`): no cache
    entry of its own; as :func:`jit_inner` would compile it where linking is unavailable."""
    if _linking.AVAILABLE:
        options = dict(options, pipeline_class=_linking.LinkedCompiler, cache=False)
    return _compile(fn, no_cpython_wrapper=True, no_cfunc_wrapper=True, **dict(OPTIONS, **options))


def jit_linked(fn):
    """Like :func:`jit_inner`, and optimised only inside its callers (:mod:`loopnet._linking`).

    Its code goes through LLVM's optimiser and code generator once, in the first caller that
    is not linked itself, instead of once at its own level and again at every level above:
    for the engine's chain of helpers, a third of a cold compile.  It has no cache entry of
    its own (its callers' entries hold its code).  Never call it from Python.
    """
    return _compile_linked(fn, fastmath=FASTMATH)


def pjit_linked(fn):
    """:func:`jit_linked` with ``parallel=True``: its ``prange`` loops' kernels are linked too."""
    return _compile_linked(fn, parallel=True, fastmath=FASTMATH)


#: Modules whose compiled functions :func:`linked_twin` also links (the textbook kernels, the
#: optimizer's updates and what they call).
TWIN_MODULES = ("loopnet.kernels", "loopnet.tiles", "loopnet.activations", "loopnet.costs",
                "loopnet.random", "loopnet.optim", "loopnet.fpenv")
_twins = {}


def linked_twin(dispatcher):
    """``dispatcher``'s function compiled again as a linked helper (:func:`jit_linked`, same
    fastmath flags), calling linked twins of the kernels it calls.

    The kernels stay Python-callable under their own names (tests, trace); the engine calls
    their twins, so that a fit compiles each kernel once, into the engine's one optimised
    module, instead of also on its own (optimised, emitted, with a CPython wrapper and a cache
    entry).  The twin runs the same source; the tests check the engine bit for bit against
    the naive loop of the Python-callable kernels.
    """
    if not _linking.AVAILABLE or not isinstance(dispatcher, numba.core.dispatcher.Dispatcher):
        return dispatcher
    if dispatcher not in _twins:
        fn = dispatcher.py_func
        names = dict(fn.__globals__)
        for name in fn.__code__.co_names:
            callee = names.get(name)
            if (isinstance(callee, numba.core.dispatcher.Dispatcher)
                    and callee.py_func.__module__ in TWIN_MODULES):
                names[name] = linked_twin(callee)
        twin = types.FunctionType(fn.__code__, names, fn.__name__, fn.__defaults__, fn.__closure__)
        twin.__qualname__, twin.__doc__ = fn.__qualname__, fn.__doc__
        twin.__module__ = fn.__module__
        _twins[dispatcher] = _compile_linked(
            twin, fastmath=dispatcher.targetoptions.get("fastmath", FASTMATH))
    return _twins[dispatcher]
