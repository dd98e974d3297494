"""Explicit SIMD vectors for compiled code: a Numba type for an LLVM vector, and the few
operations the outer-product tiles of :mod:`loopnet.tiles` need.

LLVM vectorises loopnet's scalar loops along their own index: a dot product Σ_k w_jk x_k gets
its lanes across k.  The outer-product form of BLAS kernels keeps running sums in vector
registers across k, one vector per row j and L examples, a weight broadcast to all lanes;
LLVM's vectorisers do not build it from scalar loops, so it is written here with vectors:

* :func:`vload` / :func:`vstore`: ``a[i, k : k + L]`` as one vector (:func:`vload_as`:
  converted to another array's dtype);
* :func:`vsplat`: ``a[i, k]`` in every lane;
* :func:`vfma`: ``a·b + c`` lane by lane, rounded once (``llvm.fma``), and :func:`sfma`, the
  same for scalars, so that a scalar loop can compute exactly what one lane computes;
* :func:`vlane`: one lane as a scalar;
* :func:`lanes`: L, the lanes of a vector of an array's dtype, as a compile-time constant
  (read at run time, the tiles' offsets took registers and LLVM spilled the running sums).

and, not a vector but built the same way, :data:`matrix_view`: a slice of a flat buffer as a
2-D array, for the engine's views of w.

A vector is :data:`VECTOR_BYTES` wide: 64 (512 bits) where the target has AVX-512, 32
elsewhere.  An explicit 512-bit vector is one zmm register even where LLVM tunes its own
vectoriser to 256 bits (Intel's AVX-512 cores: Numba marks no function with a minimum legal
vector width, so 512-bit types stay legal).
"""

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, models, register_model

from ._jit import vector_registers

VECTOR_BYTES = 64 if vector_registers() >= 32 else 32


class Vector(types.Type):
    """An LLVM vector of ``count`` elements of the float type ``dtype``."""

    def __init__(self, dtype, count):
        self.dtype, self.count = dtype, count
        super().__init__(name=f"Vector({dtype}, {count})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.count))


def _vector_of(array_type):
    """The Vector type of VECTOR_BYTES of ``array_type``'s elements."""
    return Vector(array_type.dtype, VECTOR_BYTES * 8 // array_type.dtype.bitwidth)


def _address(context, builder, a_type, a, i, k):
    """Pointer to a[i, k]: no bounds check, no wraparound (the tiles keep in bounds)."""
    array = context.make_array(a_type)(context, builder, a)
    return cgutils.get_item_pointer(context, builder, a_type, array, [i, k], wraparound=False,
                                    boundscheck=False)


@intrinsic
def lanes(typingctx, like):
    """L: the elements of one vector of ``like``'s dtype (a constant)."""
    count = _vector_of(like).count

    def codegen(context, builder, sig, args):
        return ir.Constant(ir.IntType(64), count)
    return types.int64(like), codegen


def _load(context, builder, a_type, a, i, k, count):
    """The ``count`` elements a[i, k : k + count] as one LLVM vector of a's dtype."""
    source = ir.VectorType(context.get_value_type(a_type.dtype), count)
    pointer = builder.bitcast(_address(context, builder, a_type, a, i, k), source.as_pointer())
    return builder.load(pointer, align=a_type.dtype.bitwidth // 8)


@intrinsic
def vload(typingctx, a, i, k):
    """a[i, k : k + L] as a vector (a: a 2-D float array, C order)."""
    vec = _vector_of(a)

    def codegen(context, builder, sig, args):
        return _load(context, builder, sig.args[0], *args, vec.count)
    return vec(a, i, k), codegen


@intrinsic
def vload_as(typingctx, a, i, k, like):
    """a[i, k : k + L] as a vector of ``like``'s dtype, L lanes of it (float32 inputs under
    float64 weights are widened exactly)."""
    vec = _vector_of(like)

    def codegen(context, builder, sig, args):
        value = _load(context, builder, sig.args[0], *args[:3], vec.count)
        if a.dtype == like.dtype:
            return value
        return builder.fpext(value, context.get_value_type(vec))
    if not (isinstance(a.dtype, types.Float) and a.dtype.bitwidth <= like.dtype.bitwidth):
        return None
    return vec(a, i, k, like), codegen


@intrinsic
def vsplat(typingctx, a, i, k):
    """a[i, k] in each of the L lanes."""
    vec = _vector_of(a)

    def codegen(context, builder, sig, args):
        element = builder.load(_address(context, builder, sig.args[0], *args))
        target = context.get_value_type(vec)
        one = builder.insert_element(ir.Constant(target, ir.Undefined), element,
                                     ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(one, ir.Constant(target, ir.Undefined),
                                      ir.Constant(ir.VectorType(ir.IntType(32), vec.count),
                                                  [0] * vec.count))
    return vec(a, i, k), codegen


@intrinsic
def vzero(typingctx, like):
    """The vector of L zeros of ``like``'s dtype."""
    vec = _vector_of(like)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vec), None)
    return vec(like), codegen


@intrinsic
def vstore(typingctx, a, i, k, value):
    """a[i, k : k + L] = value."""
    def codegen(context, builder, sig, args):
        pointer = builder.bitcast(_address(context, builder, sig.args[0], *args[:3]),
                                  context.get_value_type(sig.args[3]).as_pointer())
        builder.store(args[3], pointer, align=a.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.none(a, i, k, value), codegen


@intrinsic
def vlane(typingctx, v, lane):
    """Lane ``lane`` of the vector v, as a scalar."""
    if not isinstance(v, Vector):
        return None

    def codegen(context, builder, sig, args):
        return builder.extract_element(args[0], args[1])
    return v.dtype(v, lane), codegen


@intrinsic
def _matrix_view(typingctx, buf, start, rows, cols):
    """buf[start : start + rows·cols] as a C-ordered rows × cols array (a view, no bounds check):
    what ``buf[start:start + rows * cols].reshape((rows, cols))`` gives, without the call to
    Numba's general reshape helper (a C function, 17 ns a call: the engine takes a view of
    each layer's w per example)."""
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"):
        return None
    result = types.Array(buf.dtype, 2, "C")

    def codegen(context, builder, sig, args):
        src = context.make_array(sig.args[0])(context, builder, args[0])
        out = context.make_array(result)(context, builder)
        item = context.get_constant(types.intp, context.get_abi_sizeof(
            context.get_data_type(buf.dtype)))
        start_, rows_, cols_ = args[1], args[2], args[3]
        data = builder.gep(src.data, [start_])
        shape = cgutils.pack_array(builder, [rows_, cols_])
        strides = cgutils.pack_array(builder, [builder.mul(cols_, item), item])
        context.populate_array(out, data=data, shape=shape, strides=strides, itemsize=item,
                               meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, result, out._getvalue())
    return result(buf, types.intp, types.intp, types.intp), codegen


def _matrix_view_python(buf, start, rows, cols):
    """:func:`_matrix_view` as NumPy does it (the JIT off)."""
    return buf[start:start + rows * cols].reshape((rows, cols))


matrix_view = _matrix_view_python if numba.config.DISABLE_JIT else _matrix_view


def _fma(builder, target, args, name):
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(target, [target] * 3),
                                         name)
    return builder.call(fma, args)


@intrinsic
def vfma(typingctx, a, b, c):
    """a·b + c lane by lane, rounded once."""
    if not (isinstance(a, Vector) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        return _fma(builder, context.get_value_type(a), args,
                    f"llvm.fma.v{a.count}f{a.dtype.bitwidth}")
    return a(a, b, c), codegen


@intrinsic
def sfma(typingctx, a, b, c):
    """a·b + c rounded once, for scalars of one float type: what each lane of :func:`vfma` does."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        return _fma(builder, context.get_value_type(a), args, f"llvm.fma.f{a.bitwidth}")
    return a(a, b, c), codegen
