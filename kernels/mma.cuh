// mma.cuh: the tensor-core instructions the kernels use, one device-side API for the GPU and
// the CPU emulator (docs/emulator.md, "Tensor cores").
//
//   pixelrnn_tf32(x)             fp32 -> tf32 bits, round to nearest, ties away from zero
//                                (cvt.rna.tf32.f32: 10 mantissa bits kept, the low 13 zero)
//   pixelrnn_round_tf32(x)       the same as a float (what a .tf32 operand holds)
//   pixelrnn_round_bf16(x)       fp32 -> the nearest bf16 value, ties to even, as a float
//                                (cvt.rn.bf16x2.f32: 7 mantissa bits kept, the low 16 zero)
//   pixelrnn_round_as<P>(x)      x rounded to precision P as a float: PIXELRNN_ROUND_FP32 (0,
//                                unchanged), PIXELRNN_ROUND_TF32 (1), PIXELRNN_ROUND_BF16 (2);
//                                for SIMT kernels that run the CPU twin's rounded-operand
//                                arithmetic with fp32 FMA (a product of two rounded operands
//                                is exact in fp32, so only the accumulation order differs)
//   pixelrnn_pack_bf16x2(lo, hi) two floats that already hold bf16 values -> one .b32 register
//                                (lo in bits 0-15: the lower-numbered fragment element)
//   pixelrnn_mma_tf32_m16n8k8    D[16x8] = A[16x8] * B[8x8] + C, tf32 inputs, fp32 accumulation
//   pixelrnn_mma_bf16_m16n8k16   D[16x8] = A[16x16] * B[16x8] + C, bf16 inputs, fp32 accumulation
//
// On the GPU these are inline PTX (`mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32`,
// `mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32`, sm_80 and later). In the emulator an
// mma is a lockstep warp operation (runtime/intrinsics.cpp, complete_mma): every lane deposits
// its fragment registers, the warp meets, the product is formed from the fragments with exactly
// the layouts of the PTX ISA, and every lane takes its D registers. A kernel that puts an element
// in the wrong register therefore computes a wrong product in the emulator as on the device.
//
// Fragment layouts (PTX ISA 8.x, section 9.7.14.5.7 "Matrix Fragments for mma.m16n8k8" (.tf32)
// and 9.7.14.5.8 "Matrix Fragments for mma.m16n8k16 with floating point type" (.bf16));
// groupID g = %laneid >> 2, threadID_in_group t = %laneid % 4:
//   m16n8k8 .tf32  A: a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4)        [row, col]
//                  B: b0 (t, g), b1 (t+4, g)                                     [k, n]
//   m16n8k16 .bf16 A: four .b32 registers of two elements each (low half first):
//                  a0,a1 (g, 2t..2t+1), a2,a3 (g+8, 2t..), a4,a5 (g, 2t+8..), a6,a7 (g+8, 2t+8..)
//                  B: two registers: b0,b1 (k = 2t..2t+1, n = g), b2,b3 (k = 2t+8.., n = g)
//   C/D (both):    c0,c1 (g, 2t..2t+1), c2,c3 (g+8, 2t..2t+1)
// All 32 lanes of the warp must execute the mma (`.aligned`); the emulator reports a launch
// error otherwise.
#pragma once

#include "common.cuh"

#ifdef PIXELRNN_EMU

// The same conversions in host arithmetic, bit-exact with the PTX conversions for finite values
// and infinities (a NaN stays a NaN: quiet, sign and top payload bits kept). The Rust twins are
// backend::precision::{round_tf32, round_bf16}.
PIXELRNN_DEVICE unsigned pixelrnn_tf32(float x) {
    unsigned u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u | 0x00400000u) & 0xffffe000u;  // NaN
    // Adding half an ulp of tf32 (bit 12) to the magnitude rounds ties away from zero; a carry
    // into the exponent is the correctly rounded result (up to infinity past the largest tf32).
    return (u + 0x1000u) & 0xffffe000u;
}
PIXELRNN_DEVICE float pixelrnn_round_bf16(float x) {
    unsigned u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        u = (u | 0x00400000u) & 0xffff0000u;  // NaN
    } else {
        u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;  // ties to even
    }
    float r;
    memcpy(&r, &u, 4);
    return r;
}
PIXELRNN_DEVICE unsigned pixelrnn_float_bits(float x) {
    unsigned u;
    memcpy(&u, &x, 4);
    return u;
}
PIXELRNN_DEVICE float pixelrnn_bits_float(unsigned u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

// D = A * B + C over the warp: this lane's fragments (layouts above); d may alias c.
PIXELRNN_DEVICE void pixelrnn_mma_tf32_m16n8k8(float d[4], const unsigned a[4],
                                               const unsigned b[2], const float c[4]) {
    ::pixelrnn_emu::MmaLane r;
    for (int i = 0; i < 4; ++i) r.a[i] = a[i];
    r.b[0] = b[0];
    r.b[1] = b[1];
    for (int i = 0; i < 4; ++i) r.c[i] = c[i];
    ::pixelrnn_emu::warp_op(::pixelrnn_emu::WARP_MMA_TF32_M16N8K8, PIXELRNN_FULL_MASK,
                            (uint64_t)(uintptr_t)&r, 0, 0);
    for (int i = 0; i < 4; ++i) d[i] = r.d[i];
}
PIXELRNN_DEVICE void pixelrnn_mma_bf16_m16n8k16(float d[4], const unsigned a[4],
                                                const unsigned b[2], const float c[4]) {
    ::pixelrnn_emu::MmaLane r;
    for (int i = 0; i < 4; ++i) r.a[i] = a[i];
    r.b[0] = b[0];
    r.b[1] = b[1];
    for (int i = 0; i < 4; ++i) r.c[i] = c[i];
    ::pixelrnn_emu::warp_op(::pixelrnn_emu::WARP_MMA_BF16_M16N8K16, PIXELRNN_FULL_MASK,
                            (uint64_t)(uintptr_t)&r, 0, 0);
    for (int i = 0; i < 4; ++i) d[i] = r.d[i];
}

#else  // the GPU

PIXELRNN_DEVICE unsigned pixelrnn_tf32(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}
PIXELRNN_DEVICE float pixelrnn_round_bf16(float x) {
    // Upper half: bf16(x); lower half: bf16(0) = 0. The register is then the rounded float.
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(x), "f"(0.0f));
    return __uint_as_float(r);
}
PIXELRNN_DEVICE unsigned pixelrnn_float_bits(float x) { return __float_as_uint(x); }
PIXELRNN_DEVICE float pixelrnn_bits_float(unsigned u) { return __uint_as_float(u); }

PIXELRNN_DEVICE void pixelrnn_mma_tf32_m16n8k8(float d[4], const unsigned a[4],
                                               const unsigned b[2], const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%10, %11, %12, %13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),
          "f"(c[1]), "f"(c[2]), "f"(c[3]));
}
PIXELRNN_DEVICE void pixelrnn_mma_bf16_m16n8k16(float d[4], const unsigned a[4],
                                                const unsigned b[2], const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),
          "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

#endif

PIXELRNN_DEVICE float pixelrnn_round_tf32(float x) { return pixelrnn_bits_float(pixelrnn_tf32(x)); }

// The precisions of pixelrnn_round_as, as template arguments (the Rust side's
// backend::Precision in the same order).
#define PIXELRNN_ROUND_FP32 0
#define PIXELRNN_ROUND_TF32 1
#define PIXELRNN_ROUND_BF16 2

template <int P>
PIXELRNN_DEVICE float pixelrnn_round_as(float x) {
    static_assert(P == PIXELRNN_ROUND_FP32 || P == PIXELRNN_ROUND_TF32 || P == PIXELRNN_ROUND_BF16,
                  "pixelrnn_round_as: P is one of PIXELRNN_ROUND_{FP32,TF32,BF16}");
    return P == PIXELRNN_ROUND_TF32   ? pixelrnn_round_tf32(x)
           : P == PIXELRNN_ROUND_BF16 ? pixelrnn_round_bf16(x)
                                      : x;
}

// Two bf16 values (floats whose low 16 bits are 0, from pixelrnn_round_bf16) as one register:
// `lo` in bits 0-15, `hi` in bits 16-31 (PRMT on the GPU; no rounding left to do).
PIXELRNN_DEVICE unsigned pixelrnn_pack_bf16x2(float lo, float hi) {
    return (pixelrnn_float_bits(lo) >> 16) | (pixelrnn_float_bits(hi) & 0xffff0000u);
}
