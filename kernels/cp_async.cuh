// cp_async.cuh: asynchronous global-to-shared copies (sm_80's cp.async) for the kernels that
// stage their tiles without passing through registers: a copy is issued, grouped by a commit,
// and waited for by group; until its wait it may not have landed, so a read of its shared
// destination before pixelrnn_cp_async_wait (and the barrier that shows the other threads' copies)
// is a bug, and so is issuing into a buffer that another thread may still be reading.
//
//   pixelrnn_cp_async_f32(dst, src, pred):    4 bytes, dst[0] = pred ? src[0] : 0
//   pixelrnn_cp_async_f32x4(dst, src, pred):  16 bytes (both 16-byte aligned), zero-filled when
//                                            !pred; through L2 only (.cg), for streamed tiles
//   pixelrnn_cp_async_commit():               closes the group of the copies issued since the
//                                            last commit (an empty group is a group)
//   pixelrnn_cp_async_wait<N>():              returns when at most the N newest groups of this
//                                            thread are still in flight
//
// A copy with !pred reads no global memory (src-size 0 zero-fills); `src` must still be an
// address of the buffer (callers pass its base), as a guard against ever reading past it.
//
// The emulator's twin (docs/emulator.md, "Asynchronous copies"; runtime/async_copy.cpp) makes
// both bugs visible: an issued copy reads its source at once (the global load is counted at
// the issuing site), writes a NaN poison into its destination at once (the shared store is
// counted there), and lands its value only at the wait that covers its group, the latest
// moment the hardware allows. A read before the wait sees the poison; a copy issued into a
// buffer still being read poisons that read.
#pragma once

#include "common.cuh"

#ifdef PIXELRNN_EMU
// The poison's bits: a quiet NaN with a payload no arithmetic produces.
#define PIXELRNN_CP_ASYNC_POISON 0x7fc0a5a5u

PIXELRNN_DEVICE void pixelrnn_cp_async_f32(float* dst, const float* src, bool pred) {
    ::pixelrnn_emu::cp_async_check(dst, pred ? src : nullptr, sizeof(float));
    const float v = pred ? *src : 0.0f;
    *dst = __uint_as_float(PIXELRNN_CP_ASYNC_POISON);
    ::pixelrnn_emu::cp_async_issue(dst, &v, sizeof v);
}
PIXELRNN_DEVICE void pixelrnn_cp_async_f32x4(float* dst, const float* src, bool pred) {
    ::pixelrnn_emu::cp_async_check(dst, pred ? src : nullptr, sizeof(float4));
    const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    const float4 v = pred ? *reinterpret_cast<const float4*>(src) : zero;
    const float p = __uint_as_float(PIXELRNN_CP_ASYNC_POISON);
    *reinterpret_cast<float4*>(dst) = make_float4(p, p, p, p);
    ::pixelrnn_emu::cp_async_issue(dst, &v, sizeof v);
}
PIXELRNN_DEVICE void pixelrnn_cp_async_commit() { ::pixelrnn_emu::cp_async_commit(); }
template <int N>
PIXELRNN_DEVICE void pixelrnn_cp_async_wait() {
    static_assert(N >= 0, "cp.async.wait_group takes a non-negative group count");
    ::pixelrnn_emu::cp_async_wait(N);
}
#else
PIXELRNN_DEVICE void pixelrnn_cp_async_f32(float* dst, const float* src, bool pred) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(src),
                 "r"(pred ? 4 : 0)
                 : "memory");
}
PIXELRNN_DEVICE void pixelrnn_cp_async_f32x4(float* dst, const float* src, bool pred) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src),
                 "r"(pred ? 16 : 0)
                 : "memory");
}
PIXELRNN_DEVICE void pixelrnn_cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
PIXELRNN_DEVICE void pixelrnn_cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
#endif
