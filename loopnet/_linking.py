"""Helpers whose code Numba optimises once, inside the function that calls them.

Numba compiles every ``@njit`` function into a library of its own: it optimises that
library's LLVM module at O3 and emits its machine code, then links the optimised module
into each caller's library, which is optimised and emitted again, and so up the chain of
callers.  The engine's kernels sit seven calls below ``engine.drive_batches``, so before
this module their code went through O3 and the code generator once per level; in a cold
compile of the default ``fit`` (29 s on a 2-core EPYC) 20 s were LLVM's.

A *linked* function (``_jit.jit_linked``, and ``_jit.linked_twin`` for the kernels the engine
calls) skips its own optimisation, machine code and cache entry: its library is linked, as the
IR it was lowered to, into its callers, and the first caller that is not linked optimises the
whole.  That is what Numba does itself for its internal helpers
(``BaseContext.compile_subroutine`` sets ``flags.no_compile``), here applied to functions
typed and dispatched like any other:

* :class:`LinkedLibrary` is the library: ``finalize`` links, nothing else; no pointer to its
  code exists (it has no CPython wrapper: never call a linked function from Python).
* :class:`LinkedCompiler` is Numba's nopython pipeline with one pass more,
  :class:`UseLinkedLibrary`, which hands the lowering pass a LinkedLibrary; for a function
  with ``prange`` loops it also links the loops' kernels (Numba's parfor gufuncs and their
  wrappers) the same way.

The machine code is the same kind of code as before — the same IR, optimised by the same
O3 pipeline, after inlining instead of before — and tests/test_engine.py checks it bit for
bit against the naive loop of the kernels.  This rests on Numba internals (its code library
classes and pass pipeline; tests/test_engine.py and tests/test_startup.py pass with Numba
0.62.1, 0.63.1, 0.66.0 and 0.68.1): :data:`AVAILABLE` is False when they are not there, and
then ``jit_linked`` is plain ``jit_inner``.  ``LOOPNET_LINKED=0`` turns it off (to compare
compile times, or if a Numba version misbehaves).
"""

import os

AVAILABLE = False
try:
    from numba.core import compiler, typed_passes
    from numba.core.codegen import JITCodeLibrary
    from numba.core.compiler_machinery import LoweringPass, register_pass
except ImportError:      # a Numba without these internals: linked functions compile as usual
    pass
else:
    AVAILABLE = os.environ.get("LOOPNET_LINKED", "1") != "0"

# Libraries Numba creates while lowering a prange loop: its gufunc kernel, the wrapper that
# hands the kernel to the thread pool, and between them the kernel's gufunc-loop wrapper
# (named after the repr of the ``_GufuncWrapper`` that builds it).  One left unlinked is
# optimised and emitted with everything it links (the whole engine) when the next one links
# it; the gufunc-loop wrapper is still optimised (:class:`OptimisedLinkedLibrary`).
_PARFOR_PARTS = ("__numba_parfor_gufunc", "parallelgufuncwrapper")
_GUFUNC_LOOP_WRAPPER = "<numba.np.ufunc.wrappers._GufuncWrapper object"
# LLVM's optimisation level for the clean-up of each linked function (LinkedLibrary).
FUNCTION_OPT_LEVEL = 1


if AVAILABLE:
    class _EnvironmentNotSet:
        """The codegen as a linked library shows it: a function never run on its own has no
        environment to point its global at (its callers set their own)."""

        def __init__(self, codegen):
            self._codegen = codegen

        def set_env(self, env_name, env):
            pass

        def __getattr__(self, name):
            return getattr(self._codegen, name)

    class LinkedLibrary(JITCodeLibrary):
        """A code library that is only ever linked into others, not optimised on its own.

        Numba's ``finalize`` links the libraries this one calls into its module, then
        optimises it and hands it to the JIT; here the last two steps do nothing.  Each
        function gets only a cheap clean-up when it is added (:meth:`_optimize_functions`).
        """

        def _optimize_final_module(self):
            pass                # the caller that is not linked optimises the whole

        def _optimize_functions(self, ll_module):
            """Each function's clean-up as it is added, as Numba does, but at LLVM's O1 and with
            one pass manager for the module (Numba builds an O3 one per function): the
            O3 of the callers that link it does the rest.  Measured on the cold compile of a
            fit: 0.5 s less LLVM time (1.9 against 2.4 s, these clean-ups and the two O3 runs
            together; with no clean-up at all, 2.3 s: the O3 runs then take longer), the
            same speed and the same bits."""
            try:
                fpm, pb = self._codegen._function_pass_manager(opt=FUNCTION_OPT_LEVEL)
            except (AttributeError, TypeError):     # a Numba without this hook: its own way
                return super()._optimize_functions(ll_module)
            ll_module.data_layout = self._codegen._data_layout
            for func in ll_module.functions:
                fpm.run(func, pb)

        def _finalize_final_module(self):
            self._finalize_dynamic_globals()
            self._finalized = True      # no machine code: the module is only linked

        def get_pointer_to_function(self, name):
            return 0            # no machine code: nothing to point at

        @property
        def codegen(self):
            return _EnvironmentNotSet(self._codegen)

    class OptimisedLinkedLibrary(LinkedLibrary):
        """A linked library whose module is optimised (as Numba would) before it is linked.

        For the prange loop's gufunc-loop wrapper, which links the whole engine's loop
        body: its module optimised here and again in the driver gives better machine code
        for the kernels than one optimisation in the driver (measured: W5 with 2 threads
        8 % faster, the same as when Numba also emitted this library's machine code, which
        nothing ever ran).
        """

        def _optimize_final_module(self):
            JITCodeLibrary._optimize_final_module(self)

    def _linked_parfor_parts(codegen):
        """``codegen.create_library`` that makes the prange loops' libraries linked ones."""
        create = codegen.create_library

        def create_library(name, **kwargs):
            if name.startswith(_GUFUNC_LOOP_WRAPPER):
                return OptimisedLinkedLibrary(codegen, name)
            if name.startswith(_PARFOR_PARTS):
                return LinkedLibrary(codegen, name)
            return create(name, **kwargs)
        return create_library

    @register_pass(mutates_CFG=False, analysis_only=False)
    class UseLinkedLibrary(LoweringPass):
        """Lower the function into a :class:`LinkedLibrary` (and its prange loops likewise)."""

        _name = "loopnet_use_linked_library"

        def __init__(self):
            LoweringPass.__init__(self)

        def run_pass(self, state):
            codegen = state.targetctx.codegen()
            state.library = LinkedLibrary(codegen, state.func_id.func_qualname)
            return True

    class _LinkedParforLowering(typed_passes.NativeParforLowering):
        """Numba's lowering of a function with prange loops, whose loop kernels are linked too."""

        _name = "loopnet_linked_parfor_lowering"

        def run_pass(self, state):
            codegen = state.targetctx.codegen()
            codegen.create_library = _linked_parfor_parts(codegen)
            try:
                return super().run_pass(state)
            finally:
                del codegen.create_library      # the class's method again

    register_pass(mutates_CFG=True, analysis_only=False)(_LinkedParforLowering)

    class LinkedCompiler(compiler.CompilerBase):
        """Numba's nopython pipeline, lowering into a :class:`LinkedLibrary`."""

        def define_pipelines(self):
            pm = compiler.DefaultPassBuilder.define_nopython_pipeline(self.state)
            passes = [p for p, _ in pm.passes]
            if typed_passes.AnnotateTypes not in passes:
                return [pm]     # a pipeline this module does not know: compile as usual
            pm.add_pass_after(UseLinkedLibrary, typed_passes.AnnotateTypes)
            if typed_passes.NativeParforLowering in passes:
                where = [p for p, _ in pm.passes].index(typed_passes.NativeParforLowering)
                pm.passes[where] = (_LinkedParforLowering, "lowering, prange kernels linked")
            pm.finalize()
            return [pm]
