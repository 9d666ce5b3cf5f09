// cuda_emu.h: the CUDA device-side language, mapped onto host C++17, for the CPU emulation of
// the CUDA execution model (src/backend/cuda/emulator.rs, docs/emulator.md).
//
// kernels/common.cuh includes this header when PIXELRNN_EMU is defined (build.rs defines it in
// the generated translation units that compile kernels/*.cu with g++). Each GPU thread of a
// block runs as a fiber; the fibers of a block all run on one host worker thread, so:
// - threadIdx is a per-fiber value, read through a thread-local pointer that the scheduler
//   (runtime/scheduler.cpp) points at the running fiber before switching to it;
// - blockIdx/blockDim/gridDim are per-worker (thread-local) values;
// - static shared arrays (PIXELRNN_SHARED, kernels/common.cuh) live in the running worker's
//   static shared arena, one copy per worker, i.e. one per running block (a worker runs its
//   blocks one after the other). Not in `thread_local` storage: the main program's static TLS
//   is carved out of every thread's stack by glibc, so a megabyte of shared arrays there left
//   every thread of any program that links the emulator a megabyte less stack (at 2.05 MB it
//   overflowed the test harness's 2 MiB threads). A plain `__shared__` does not compile here;
// - __syncthreads() and the warp intrinsics switch back to the scheduler, which resumes the
//   fibers when the barrier or the warp-wide operation is complete (warp lockstep).
#pragma once

// Host headers a kernel might include are included here, at global scope: the generated unit
// includes the kernel file inside a namespace (see build.rs), where a first inclusion of a
// system header would declare its contents in the wrong scope.
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cstddef>
#include <cstdint>

#include <type_traits>

// ---------------------------------------------------------------------------------------------
// Vector types

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

#define PIXELRNN_EMU_VEC2(T, N, A)                                                           \
    struct __attribute__((aligned(A))) N##2 {                                                \
        T x, y;                                                                              \
    };                                                                                       \
    static inline N##2 make_##N##2(T x, T y) { return N##2{x, y}; }
#define PIXELRNN_EMU_VEC3(T, N)                                                              \
    struct N##3 {                                                                            \
        T x, y, z;                                                                           \
    };                                                                                       \
    static inline N##3 make_##N##3(T x, T y, T z) { return N##3{x, y, z}; }
#define PIXELRNN_EMU_VEC4(T, N, A)                                                           \
    struct __attribute__((aligned(A))) N##4 {                                                \
        T x, y, z, w;                                                                        \
    };                                                                                       \
    static inline N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }

PIXELRNN_EMU_VEC2(float, float, 8)
PIXELRNN_EMU_VEC3(float, float)
PIXELRNN_EMU_VEC4(float, float, 16)
PIXELRNN_EMU_VEC2(int, int, 8)
PIXELRNN_EMU_VEC3(int, int)
PIXELRNN_EMU_VEC4(int, int, 16)
PIXELRNN_EMU_VEC2(unsigned, uint, 8)
PIXELRNN_EMU_VEC4(unsigned, uint, 16)
PIXELRNN_EMU_VEC2(double, double, 16)
static inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }

// ---------------------------------------------------------------------------------------------
// Qualifiers

#define __global__
#define __device__
#define __host__
#define __constant__ static
#define __noinline__ __attribute__((noinline))
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// Static shared arrays are declared with PIXELRNN_SHARED (see the header comment); this makes
// a plain `__shared__` declaration a compile error that names the macro to use.
#define __shared__ PIXELRNN_SHARED_declares_static_shared_arrays_in_kernels
// __restrict__ is a GNU C++ keyword already.

// ---------------------------------------------------------------------------------------------
// The runtime's interface (kernels/emu/runtime/)

namespace pixelrnn_emu {

#define PIXELRNN_EMU_TLS __attribute__((tls_model("initial-exec")))
extern thread_local const uint3* tl_thread_idx PIXELRNN_EMU_TLS;
extern thread_local uint3 tl_block_idx PIXELRNN_EMU_TLS;
extern thread_local dim3 tl_block_dim PIXELRNN_EMU_TLS;
extern thread_local dim3 tl_grid_dim PIXELRNN_EMU_TLS;
extern thread_local unsigned char* tl_dynamic_shared PIXELRNN_EMU_TLS;
extern thread_local unsigned char* tl_static_shared PIXELRNN_EMU_TLS;
// The running launch's serial number on this host thread (runtime/grid.cpp) and the static
// shared bytes its declarations added on this thread: the kernel's static shared size, which
// the launch checks with its dynamic bytes against the device's per-block limits (c_api.cpp).
extern thread_local uint64_t tl_launch_serial PIXELRNN_EMU_TLS;
extern thread_local size_t tl_static_bytes PIXELRNN_EMU_TLS;

// The offset of a new static shared array of `bytes` bytes in every worker's static shared
// arena (runtime/memory.cpp; 128-byte aligned, so that its banks are the device's). Called once
// per declaration (per template instance), the first time a thread runs it.
size_t register_static_shared(size_t bytes);

// The running block's copy of the static shared array of declaration `Site` (a lambda type:
// one per declaration and template instance, as a function-local static would be).
template <class T, class Site>
static inline T& static_shared(Site) {
    static const size_t offset = register_static_shared(sizeof(T));
    // Counted once per launch and host thread, as ptxas sums a kernel's __shared__ arrays.
    static thread_local uint64_t counted_in = 0;
    if (counted_in != tl_launch_serial) {
        counted_in = tl_launch_serial;
        tl_static_bytes += sizeof(T);
    }
    return *reinterpret_cast<T*>(tl_static_shared + offset);
}

// Kinds of warp-wide operations (runtime/intrinsics.cpp computes them once every lane of the
// mask came).
enum WarpOp : int {
    WARP_SYNC = 0,
    WARP_SHFL_IDX,
    WARP_SHFL_UP,
    WARP_SHFL_DOWN,
    WARP_SHFL_XOR,
    WARP_BALLOT,
    WARP_ANY,
    WARP_ALL,
    WARP_REDUCE_ADD_U32,
    WARP_REDUCE_MIN_U32,
    WARP_REDUCE_MAX_U32,
    WARP_REDUCE_MIN_I32,
    WARP_REDUCE_MAX_I32,
    WARP_REDUCE_AND,
    WARP_REDUCE_OR,
    WARP_REDUCE_XOR,
};

// Blocks the calling fiber until every thread of the block arrived.
void barrier();
// Blocks until every lane of `mask` called the same operation, then returns this lane's result.
// `value` is the lane's payload (raw bits), `a` and `b` the operation's parameters.
uint64_t warp_op(int kind, unsigned mask, uint64_t value, int a, int b);
// The lanes of this warp that have not exited.
unsigned active_mask();
// Ends the launch with an error naming the thread (a kernel's __trap or failed assert).
[[noreturn]] void trap(const char* why);
#define PIXELRNN_EMU_TRAP_DECLARED

template <class T>
static inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                  "warp shuffles of at most 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof(T));
    return bits;
}
template <class T>
static inline T from_bits(uint64_t bits) {
    T v;
    memcpy(&v, &bits, sizeof(T));
    return v;
}

}  // namespace pixelrnn_emu

#define threadIdx (*::pixelrnn_emu::tl_thread_idx)
#define blockIdx (::pixelrnn_emu::tl_block_idx)
#define blockDim (::pixelrnn_emu::tl_block_dim)
#define gridDim (::pixelrnn_emu::tl_grid_dim)
#define warpSize 32

// A static shared array `type name dims` (PIXELRNN_SHARED): a reference to the running block's
// copy in the worker's static shared arena.
#define PIXELRNN_EMU_SHARED(type, name, dims) \
    type(&name) dims = ::pixelrnn_emu::static_shared<type dims>([] {})

// Dynamic shared memory: a pointer to this block's LaunchCfg::shared_bytes bytes.
#define PIXELRNN_EMU_DYNAMIC_SHARED(type, name) \
    type* const name = reinterpret_cast<type*>(::pixelrnn_emu::tl_dynamic_shared)

// ---------------------------------------------------------------------------------------------
// Synchronisation and warp intrinsics

static inline void __syncthreads() { ::pixelrnn_emu::barrier(); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
    ::pixelrnn_emu::warp_op(::pixelrnn_emu::WARP_SYNC, mask, 0, 0, 0);
}
static inline unsigned __activemask() { return ::pixelrnn_emu::active_mask(); }
static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
[[noreturn]] static inline void __trap() { ::pixelrnn_emu::trap("__trap()"); }

template <class T>
static inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
    return ::pixelrnn_emu::from_bits<T>(::pixelrnn_emu::warp_op(
        ::pixelrnn_emu::WARP_SHFL_IDX, mask, ::pixelrnn_emu::to_bits(var), src_lane, width));
}
template <class T>
static inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
    return ::pixelrnn_emu::from_bits<T>(::pixelrnn_emu::warp_op(
        ::pixelrnn_emu::WARP_SHFL_UP, mask, ::pixelrnn_emu::to_bits(var), (int)delta, width));
}
template <class T>
static inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
    return ::pixelrnn_emu::from_bits<T>(::pixelrnn_emu::warp_op(
        ::pixelrnn_emu::WARP_SHFL_DOWN, mask, ::pixelrnn_emu::to_bits(var), (int)delta, width));
}
template <class T>
static inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
    return ::pixelrnn_emu::from_bits<T>(::pixelrnn_emu::warp_op(
        ::pixelrnn_emu::WARP_SHFL_XOR, mask, ::pixelrnn_emu::to_bits(var), lane_mask, width));
}
static inline unsigned __ballot_sync(unsigned mask, int predicate) {
    return (unsigned)::pixelrnn_emu::warp_op(::pixelrnn_emu::WARP_BALLOT, mask, predicate != 0,
                                             0, 0);
}
static inline int __any_sync(unsigned mask, int predicate) {
    return (int)::pixelrnn_emu::warp_op(::pixelrnn_emu::WARP_ANY, mask, predicate != 0, 0, 0);
}
static inline int __all_sync(unsigned mask, int predicate) {
    return (int)::pixelrnn_emu::warp_op(::pixelrnn_emu::WARP_ALL, mask, predicate != 0, 0, 0);
}
static inline unsigned __reduce_add_sync(unsigned mask, unsigned v) {
    return (unsigned)::pixelrnn_emu::warp_op(::pixelrnn_emu::WARP_REDUCE_ADD_U32, mask, v, 0, 0);
}
static inline int __reduce_add_sync(unsigned mask, int v) {
    return (int)__reduce_add_sync(mask, (unsigned)v);
}
static inline unsigned __reduce_min_sync(unsigned mask, unsigned v) {
    return (unsigned)::pixelrnn_emu::warp_op(::pixelrnn_emu::WARP_REDUCE_MIN_U32, mask, v, 0, 0);
}
static inline unsigned __reduce_max_sync(unsigned mask, unsigned v) {
    return (unsigned)::pixelrnn_emu::warp_op(::pixelrnn_emu::WARP_REDUCE_MAX_U32, mask, v, 0, 0);
}
static inline int __reduce_min_sync(unsigned mask, int v) {
    return (int)(unsigned)::pixelrnn_emu::warp_op(::pixelrnn_emu::WARP_REDUCE_MIN_I32, mask,
                                                  (uint32_t)v, 0, 0);
}
static inline int __reduce_max_sync(unsigned mask, int v) {
    return (int)(unsigned)::pixelrnn_emu::warp_op(::pixelrnn_emu::WARP_REDUCE_MAX_I32, mask,
                                                  (uint32_t)v, 0, 0);
}
static inline unsigned __reduce_and_sync(unsigned mask, unsigned v) {
    return (unsigned)::pixelrnn_emu::warp_op(::pixelrnn_emu::WARP_REDUCE_AND, mask, v, 0, 0);
}
static inline unsigned __reduce_or_sync(unsigned mask, unsigned v) {
    return (unsigned)::pixelrnn_emu::warp_op(::pixelrnn_emu::WARP_REDUCE_OR, mask, v, 0, 0);
}
static inline unsigned __reduce_xor_sync(unsigned mask, unsigned v) {
    return (unsigned)::pixelrnn_emu::warp_op(::pixelrnn_emu::WARP_REDUCE_XOR, mask, v, 0, 0);
}

// ---------------------------------------------------------------------------------------------
// Thread-block clusters (sm_90; runtime/grid.cpp). The blocks of one cluster run together, one
// host thread each, taking turns between cluster barriers in an order drawn from the launch's
// seed: a block runs until all of its threads wait at the cluster barrier (or exited), then
// the next block of the turn order runs. So a read of another block's data without the
// barrier that orders it sees the data of the wrong phase, deterministically for a seed.
// Device code: kernels/cluster.cuh (barrier.cluster.arrive.release + wait.acquire, and
// %cluster_ctarank); these are its emulated twins. Outside a cluster launch (a 1x1x1 cluster)
// the barrier is one of the block. The values come from runtime calls, not thread-locals read
// by kernel code, so that the counted units do not count them as shared-memory accesses.

namespace pixelrnn_emu {
// Blocks the calling fiber until every thread of every block of its cluster arrived.
void cluster_sync();
// This block's rank in its cluster (x fastest), the cluster's blocks, and its shape.
unsigned cluster_block_rank();
unsigned cluster_num_blocks();
dim3 cluster_dims();
}  // namespace pixelrnn_emu

// The cooperative-groups view of the same (cg::this_cluster()).
namespace cooperative_groups {
struct cluster_group {
    void sync() const { ::pixelrnn_emu::cluster_sync(); }
    unsigned block_rank() const { return ::pixelrnn_emu::cluster_block_rank(); }
    unsigned num_blocks() const { return ::pixelrnn_emu::cluster_num_blocks(); }
    dim3 dim_blocks() const { return ::pixelrnn_emu::cluster_dims(); }
};
static inline cluster_group this_cluster() { return cluster_group{}; }
}  // namespace cooperative_groups

// ---------------------------------------------------------------------------------------------
// Asynchronous copies (cp.async): the emulated side of kernels/cp_async.cuh. Each thread keeps
// its issued copies (destination and value) until the wait that covers their commit group lands
// them (runtime/async_copy.cpp); the copies still in flight when a thread exits never land.

namespace pixelrnn_emu {
// Traps unless a copy of `bytes` (4, 8 or 16) from global `src` (null for a zero-fill, which
// reads nothing) to shared `dst` is one the hardware takes: both addresses aligned to its size.
// Called before the source is read, so that a misaligned copy is an error, not a fault.
void cp_async_check(const void* dst, const void* src, unsigned bytes);
// Queues a copy of `bytes` bytes of `value` (already read) to shared address `dst` in the
// calling thread's open group.
void cp_async_issue(void* dst, const void* value, unsigned bytes);
// Closes the calling thread's open group (cp.async.commit_group).
void cp_async_commit();
// Lands every copy of the calling thread's committed groups but the `newest_pending` newest
// (cp.async.wait_group).
void cp_async_wait(int newest_pending);
}  // namespace pixelrnn_emu

// ---------------------------------------------------------------------------------------------
// Atomics: blocks run on several host threads, so these are real atomic operations.

namespace pixelrnn_emu {
template <class T, class F>
static inline T atomic_update(T* p, F f) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "atomics on 4- or 8-byte values");
    using Bits = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
    Bits* bp = reinterpret_cast<Bits*>(p);
    Bits old_bits = __atomic_load_n(bp, __ATOMIC_RELAXED);
    for (;;) {
        T old;
        memcpy(&old, &old_bits, sizeof(T));
        T next = f(old);
        Bits next_bits;
        memcpy(&next_bits, &next, sizeof(T));
        if (__atomic_compare_exchange_n(bp, &old_bits, next_bits, true, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED)) {
            return old;
        }
    }
}
}  // namespace pixelrnn_emu

static inline float atomicAdd(float* p, float v) {
    return ::pixelrnn_emu::atomic_update(p, [v](float o) { return o + v; });
}
static inline double atomicAdd(double* p, double v) {
    return ::pixelrnn_emu::atomic_update(p, [v](double o) { return o + v; });
}
static inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned atomicAdd(unsigned* p, unsigned v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline int atomicSub(int* p, int v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned atomicSub(unsigned* p, unsigned v) {
    return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST);
}
static inline int atomicExch(int* p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned atomicExch(unsigned* p, unsigned v) {
    return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}
static inline float atomicExch(float* p, float v) {
    return ::pixelrnn_emu::atomic_update(p, [v](float) { return v; });
}
static inline int atomicMax(int* p, int v) {
    return ::pixelrnn_emu::atomic_update(p, [v](int o) { return o > v ? o : v; });
}
static inline unsigned atomicMax(unsigned* p, unsigned v) {
    return ::pixelrnn_emu::atomic_update(p, [v](unsigned o) { return o > v ? o : v; });
}
static inline int atomicMin(int* p, int v) {
    return ::pixelrnn_emu::atomic_update(p, [v](int o) { return o < v ? o : v; });
}
static inline unsigned atomicMin(unsigned* p, unsigned v) {
    return ::pixelrnn_emu::atomic_update(p, [v](unsigned o) { return o < v ? o : v; });
}
static inline int atomicAnd(int* p, int v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned atomicAnd(unsigned* p, unsigned v) {
    return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST);
}
static inline int atomicOr(int* p, int v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned atomicOr(unsigned* p, unsigned v) {
    return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST);
}
static inline int atomicXor(int* p, int v) { return __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned atomicXor(unsigned* p, unsigned v) {
    return __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST);
}
template <class T>
static inline T atomicCAS_impl(T* p, T compare, T v) {
    __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return compare;  // the old value, whether or not the exchange happened
}
static inline int atomicCAS(int* p, int c, int v) { return atomicCAS_impl(p, c, v); }
static inline unsigned atomicCAS(unsigned* p, unsigned c, unsigned v) {
    return atomicCAS_impl(p, c, v);
}
static inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long c,
                                           unsigned long long v) {
    return atomicCAS_impl(p, c, v);
}

// ---------------------------------------------------------------------------------------------
// Math and bit intrinsics (the fast-math ones computed exactly: no timing meaning here either)

// glibc's <math.h> declares its own __expf, __logf... (same results): macros route the CUDA
// names to the standard functions without redeclaring them.
#define __expf(x) expf(x)
#define __exp10f(x) exp10f(x)
#define __logf(x) logf(x)
#define __log2f(x) log2f(x)
#define __log10f(x) log10f(x)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __tanf(x) tanf(x)
#define __powf(x, y) powf(x, y)
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
static inline float __int_as_float(int x) { return ::pixelrnn_emu::from_bits<float>((uint32_t)x); }
static inline int __float_as_int(float x) { return (int)(uint32_t)::pixelrnn_emu::to_bits(x); }
static inline float __uint_as_float(unsigned x) { return ::pixelrnn_emu::from_bits<float>(x); }
static inline unsigned __float_as_uint(float x) { return (uint32_t)::pixelrnn_emu::to_bits(x); }
static inline double __longlong_as_double(long long x) {
    return ::pixelrnn_emu::from_bits<double>((uint64_t)x);
}
static inline long long __double_as_longlong(double x) {
    return (long long)::pixelrnn_emu::to_bits(x);
}
static inline int __float2int_rn(float x) { return (int)rintf(x); }
static inline int __float2int_rz(float x) { return (int)x; }
static inline int __float2int_rd(float x) { return (int)floorf(x); }
static inline int __float2int_ru(float x) { return (int)ceilf(x); }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
static inline int __clzll(long long x) {
    return x == 0 ? 64 : __builtin_clzll((unsigned long long)x);
}
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
static inline int __mul24(int a, int b) { return a * b; }
static inline unsigned __umulhi(unsigned a, unsigned b) {
    return (unsigned)(((unsigned long long)a * b) >> 32);
}
template <class T>
static inline T __ldg(const T* p) {
    return *p;
}

// CUDA's overloaded min/max of the device runtime.
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline unsigned long long min(unsigned long long a, unsigned long long b) {
    return a < b ? a : b;
}
static inline unsigned long long max(unsigned long long a, unsigned long long b) {
    return a > b ? a : b;
}
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }
static inline long long min(int a, long long b) { return min((long long)a, b); }
static inline long long min(long long a, int b) { return min(a, (long long)b); }
static inline long long max(int a, long long b) { return max((long long)a, b); }
static inline long long max(long long a, int b) { return max(a, (long long)b); }

// ---------------------------------------------------------------------------------------------
// Half and bfloat16 storage types with their conversions (round to nearest even, as the GPU's
// __float2half_rn / __float2bfloat16_rn), arithmetic through float.

struct __half {
    unsigned short x;
};
struct __nv_bfloat16 {
    unsigned short x;
};
struct __half2 {
    __half x, y;
};
struct __nv_bfloat162 {
    __nv_bfloat16 x, y;
};

static inline __half __float2half_rn(float f) {
    const uint32_t u = (uint32_t)::pixelrnn_emu::to_bits(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t abs = u & 0x7fffffffu;
    unsigned short h;
    if (abs >= 0x7f800000u) {  // inf or nan
        h = (unsigned short)(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
    } else if (abs >= 0x477ff000u) {  // rounds to >= 65520: overflow to inf
        h = (unsigned short)(sign | 0x7c00u);
    } else if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero
        const int shift = 113 - (int)(abs >> 23);
        if (shift > 18) {  // below 2^-32: rounds to zero (and keeps the shifts below 32)
            h = (unsigned short)sign;
        } else {
            const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
            uint32_t v = mant >> (shift + 13);
            const uint32_t rem = mant & ((1u << (shift + 13)) - 1);
            const uint32_t half = 1u << (shift + 12);
            if (rem > half || (rem == half && (v & 1u))) ++v;
            h = (unsigned short)(sign | v);
        }
    } else {
        uint32_t v = ((abs - 0x38000000u) >> 13);
        const uint32_t rem = abs & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (v & 1u))) ++v;
        h = (unsigned short)(sign | v);
    }
    return __half{h};
}
static inline __half __float2half(float f) { return __float2half_rn(f); }
static inline float __half2float(__half h) {
    const uint32_t sign = (uint32_t)(h.x & 0x8000u) << 16;
    const uint32_t exp = (h.x >> 10) & 0x1fu;
    uint32_t mant = h.x & 0x3ffu;
    uint32_t u;
    if (exp == 0x1fu) {
        u = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        u = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        u = sign;
    } else {  // subnormal: normalise
        int e = 113;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            --e;
        }
        u = sign | ((uint32_t)e << 23) | ((mant & 0x3ffu) << 13);
    }
    return ::pixelrnn_emu::from_bits<float>(u);
}
static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    const uint32_t u = (uint32_t)::pixelrnn_emu::to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{(unsigned short)((u >> 16) | 0x40u)};
    const uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);
    return __nv_bfloat16{(unsigned short)(rounded >> 16)};
}
static inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
static inline float __bfloat162float(__nv_bfloat16 b) {
    return ::pixelrnn_emu::from_bits<float>((uint32_t)b.x << 16);
}
static inline __half2 __floats2half2_rn(float a, float b) {
    return __half2{__float2half_rn(a), __float2half_rn(b)};
}
static inline float2 __half22float2(__half2 h) {
    return float2{__half2float(h.x), __half2float(h.y)};
}
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
    return __nv_bfloat162{__float2bfloat16_rn(a), __float2bfloat16_rn(b)};
}
static inline float2 __bfloat1622float2(__nv_bfloat162 h) {
    return float2{__bfloat162float(h.x), __bfloat162float(h.y)};
}
static inline __half __hadd(__half a, __half b) {
    return __float2half_rn(__half2float(a) + __half2float(b));
}
static inline __half __hmul(__half a, __half b) {
    return __float2half_rn(__half2float(a) * __half2float(b));
}
static inline __half __hfma(__half a, __half b, __half c) {
    return __float2half_rn(fmaf(__half2float(a), __half2float(b), __half2float(c)));
}

// ---------------------------------------------------------------------------------------------
// Tensor cores: the emulator's side of kernels/mma.cuh (pixelrnn_mma_tf32_m16n8k8,
// pixelrnn_mma_bf16_m16n8k16). An mma is a warp operation of its own kind: each lane passes a
// pointer to its MmaLane (on its fiber stack, alive while the lane is parked) as the payload;
// once all 32 lanes came, runtime/intrinsics.cpp (complete_mma) scatters the fragments into the
// matrices with the PTX ISA's layouts, forms D = A * B + C and writes every lane's d.

namespace pixelrnn_emu {
// Warp-operation kinds after those of WarpOp.
constexpr int WARP_MMA_TF32_M16N8K8 = 64;
constexpr int WARP_MMA_BF16_M16N8K16 = 65;
// One lane's registers of an mma: A (4 x .b32), B (2 x .b32), C and D (4 x f32 each).
struct MmaLane {
    uint32_t a[4];
    uint32_t b[2];
    float c[4];
    float d[4];
};
}  // namespace pixelrnn_emu
