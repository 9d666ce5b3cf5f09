// selftest.cu: kernels that test the CPU emulator itself (tests/emulator.rs). Compiled only into
// the emulator (build.rs: kernels/emu/ is not a PTX module), but written as ordinary CUDA.
//
// Versions: every kernel here is v1.
#include "../common.cuh"
#include "../cp_async.cuh"

#include <assert.h>

// Block-wide tree sum in static shared memory with a barrier per level; out[blockIdx.x] is the
// sum of x[blockIdx.x * blockDim.x ...][0..blockDim.x). blockDim.x a power of 2, at most 1024.
// Launch: gridDim.x = n / blockDim.x.
PIXELRNN_KERNEL void __launch_bounds__(1024)
selftest_block_sum_v1(const float* __restrict__ x, float* __restrict__ out) {
    PIXELRNN_SHARED(float, s, [1024]);
    const int t = threadIdx.x;
    s[t] = x[(pixelrnn_index_t)blockIdx.x * blockDim.x + t];
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (t < stride) s[t] += s[t + stride];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}

// The same reduction with the barrier inside the loop removed: a data race that the emulator's
// seeded thread order must expose.
// Launch: as selftest_block_sum_v1.
PIXELRNN_KERNEL void __launch_bounds__(1024)
selftest_block_sum_racy_v1(const float* __restrict__ x, float* __restrict__ out) {
    PIXELRNN_SHARED(float, s, [1024]);
    const int t = threadIdx.x;
    s[t] = x[(pixelrnn_index_t)blockIdx.x * blockDim.x + t];
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (t < stride) s[t] += s[t + stride];
    }
    __syncthreads();
    if (t == 0) out[blockIdx.x] = s[0];
}

// Warp intrinsics, per thread i (lane l of warp w) with v = x[i]:
//   out[8i+0] butterfly sum (__shfl_xor_sync)        out[8i+1] tree sum (__shfl_down_sync)
//   out[8i+2] inclusive prefix sum (__shfl_up_sync)   out[8i+3] __shfl_sync from lane 5
//   out[8i+4] __shfl_sync(lane 3, width 8)            out[8i+5] __shfl_xor_sync(1, width 2)
//   out[8i+6] __shfl_down_sync(4, width 8)            out[8i+7] __shfl_up_sync(2, width 16)
//   flags[4w+0] __ballot_sync(v > 0), [4w+1] __any_sync(v > 0), [4w+2] __all_sync(v > 0),
//   [4w+3] __reduce_add_sync of (unsigned)v.
// Launch: blockDim.x a multiple of 32; one thread per element of x.
PIXELRNN_KERNEL void __launch_bounds__(1024)
selftest_warp_v1(const float* __restrict__ x, float* __restrict__ out,
                 unsigned* __restrict__ flags) {
    const pixelrnn_index_t i = pixelrnn_global_thread();
    const int lane = threadIdx.x % PIXELRNN_WARP;
    const float v = x[i];
    float* o = out + 8 * i;
    o[0] = pixelrnn_warp_sum(v);
    float down = v;
    for (int offset = PIXELRNN_WARP / 2; offset > 0; offset >>= 1) {
        down += __shfl_down_sync(PIXELRNN_FULL_MASK, down, offset);
    }
    o[1] = down;
    float scan = v;
    for (int offset = 1; offset < PIXELRNN_WARP; offset <<= 1) {
        const float up = __shfl_up_sync(PIXELRNN_FULL_MASK, scan, offset);
        if (lane >= offset) scan += up;
    }
    o[2] = scan;
    o[3] = __shfl_sync(PIXELRNN_FULL_MASK, v, 5);
    o[4] = __shfl_sync(PIXELRNN_FULL_MASK, v, 3, 8);
    o[5] = __shfl_xor_sync(PIXELRNN_FULL_MASK, v, 1, 2);
    o[6] = __shfl_down_sync(PIXELRNN_FULL_MASK, v, 4, 8);
    o[7] = __shfl_up_sync(PIXELRNN_FULL_MASK, v, 2, 16);
    const unsigned ballot = __ballot_sync(PIXELRNN_FULL_MASK, v > 0.0f);
    const int any = __any_sync(PIXELRNN_FULL_MASK, v > 0.0f);
    const int all = __all_sync(PIXELRNN_FULL_MASK, v > 0.0f);
    const unsigned total = __reduce_add_sync(PIXELRNN_FULL_MASK, (unsigned)v);
    if (lane == 0) {
        const pixelrnn_index_t w = i / PIXELRNN_WARP;
        flags[4 * w + 0] = ballot;
        flags[4 * w + 1] = (unsigned)any;
        flags[4 * w + 2] = (unsigned)all;
        flags[4 * w + 3] = total;
    }
}

// Grid-wide sum and count by atomics from every thread of every block.
// Launch: any grid, blockDim.x <= PIXELRNN_BLOCK; sum and count zeroed.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
selftest_atomic_v1(const float* __restrict__ x, float* __restrict__ sum,
                   unsigned* __restrict__ count, int n) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t i = pixelrnn_global_thread(); i < n; i += stride) {
        atomicAdd(sum, x[i]);
        atomicAdd(count, 1u);
    }
}

// Reverses each block's slice of x through dynamic shared memory.
// Launch: shared_bytes = 4 * blockDim.x; one thread per element.
PIXELRNN_KERNEL void __launch_bounds__(1024)
selftest_dynamic_shared_v1(const float* __restrict__ x, float* __restrict__ out) {
    PIXELRNN_DYNAMIC_SHARED(float, smem);
    const int t = threadIdx.x;
    const pixelrnn_index_t base = (pixelrnn_index_t)blockIdx.x * blockDim.x;
    smem[t] = x[base + t];
    __syncthreads();
    out[base + t] = smem[blockDim.x - 1 - t];
}

// As selftest_dynamic_shared_v1, through a 16 KiB static array first and then dynamic shared
// memory: its static and dynamic bytes count together against the 48 KiB a kernel gets
// without opting in. Launch: shared_bytes >= 4 * blockDim.x; one thread per element, at most
// 1024 per block.
PIXELRNN_KERNEL void __launch_bounds__(1024)
selftest_static_and_dynamic_shared_v1(const float* __restrict__ x, float* __restrict__ out) {
    PIXELRNN_SHARED(float, fixed, [4096]);
    PIXELRNN_DYNAMIC_SHARED(float, smem);
    const int t = threadIdx.x;
    const pixelrnn_index_t base = (pixelrnn_index_t)blockIdx.x * blockDim.x;
    fixed[t] = x[base + t];
    __syncthreads();
    smem[t] = fixed[blockDim.x - 1 - t];
    __syncthreads();
    out[base + t] = smem[t];
}

// Every thread of a 3-D grid of 3-D blocks writes its coordinates: out[8g + 0..8] =
// blockIdx.xyz, threadIdx.xyz, blockDim as x*10000+y*100+z, gridDim likewise, where g is the
// thread's global linear index (x fastest, blocks then threads).
// Launch: any 3-D configuration.
PIXELRNN_KERNEL void __launch_bounds__(1024)
selftest_indices_v1(float* __restrict__ out) {
    const pixelrnn_index_t block =
        ((pixelrnn_index_t)blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    const int threads = blockDim.x * blockDim.y * blockDim.z;
    const int thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    float* o = out + 8 * (block * threads + thread);
    o[0] = blockIdx.x;
    o[1] = blockIdx.y;
    o[2] = blockIdx.z;
    o[3] = threadIdx.x;
    o[4] = threadIdx.y;
    o[5] = threadIdx.z;
    o[6] = blockDim.x * 10000.0f + blockDim.y * 100.0f + blockDim.z;
    o[7] = gridDim.x * 10000.0f + gridDim.y * 100.0f + gridDim.z;
}

// Thread n writes x[n], one past the end of a buffer of n elements.
// Launch: one block of more than n threads.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
selftest_oob_write_v1(float* __restrict__ x, int n) {
    const int i = threadIdx.x;
    if (i <= n) x[i] = 1.0f;
}

// Thread n - 1 reads x[n], one past the end of x (n elements).
// Launch: one block of n threads or more.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
selftest_oob_read_v1(const float* __restrict__ x, float* __restrict__ y, int n) {
    const int i = threadIdx.x;
    if (i < n) y[i] = x[i + 1];
}

// The upper half of the block returns before a barrier that the lower half waits at.
// Launch: one block of any size >= 2.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
selftest_deadlock_v1(float* __restrict__ x) {
    const int t = threadIdx.x;
    if (t >= (int)blockDim.x / 2) return;
    __syncthreads();
    x[t] = 1.0f;
}

// Odd lanes return; even lanes then shuffle with the full mask, naming exited lanes.
// Launch: one warp.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
selftest_warp_exit_v1(float* __restrict__ x) {
    const int t = threadIdx.x;
    if (t % 2 == 1) return;
    x[t] = pixelrnn_warp_sum(1.0f);
}

// A small launch bound, to check that larger blocks are refused as on the device.
// Launch: at most 64 threads.
PIXELRNN_KERNEL void __launch_bounds__(64)
selftest_bounded_v1(float* __restrict__ x) {
    x[threadIdx.x] = 2.0f;
}

// Every thread calls __trap() when flag is 1, fails an assert when it is 2.
// Launch: any.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
selftest_trap_v1(float* __restrict__ x, int flag) {
    if (flag == 1) __trap();
    assert(flag != 2);
    x[threadIdx.x] = 3.0f;
}

// Round trips through the half and bfloat16 conversions: out[2i] = half(x[i]) as float,
// out[2i+1] = bfloat16(x[i]) as float.
// Launch: one thread per element, grid-stride.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
selftest_half_v1(const float* __restrict__ x, float* __restrict__ out, int n) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t i = pixelrnn_global_thread(); i < n; i += stride) {
        out[2 * i] = __half2float(__float2half_rn(x[i]));
        out[2 * i + 1] = __bfloat162float(__float2bfloat16_rn(x[i]));
    }
}

// Memory-counter kernels (tests/emu_counters.rs): access patterns whose sectors per request and
// bank conflicts are known.

// y[i] = x[offset + i * stride]: one fp32 load and one fp32 store per thread.
// Launch: n threads in all, x of at least offset + (n - 1) * stride + 1 floats.
PIXELRNN_KERNEL void __launch_bounds__(1024)
selftest_count_load_v1(const float* __restrict__ x, float* __restrict__ y, int stride,
                       int offset) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    y[i] = x[offset + i * stride];
}

// Load rounds (docs/emulator.md, "Load rounds"): each thread sums n values of x at a stride of
// the grid's threads, in one of three shapes. Mode 0: one load site in a loop (n rounds).
// Mode 1: the loop unrolled by hand into 4 sites per iteration, n / 4 iterations (n / 4
// rounds: the 4 loads of an iteration are in flight together). Mode 2: mode 0 with a block
// barrier after every 4 iterations (still n rounds: a barrier ends a round, it does not merge
// the loads before it). n a multiple of 4.
// Launch: any grid of blocks of `blockDim.x` threads, x of n x (all threads) floats.
PIXELRNN_KERNEL void __launch_bounds__(1024)
selftest_count_rounds_v1(const float* __restrict__ x, float* __restrict__ y, int n, int mode) {
    const pixelrnn_index_t threads = (pixelrnn_index_t)gridDim.x * blockDim.x;
    const pixelrnn_index_t i = (pixelrnn_index_t)blockIdx.x * blockDim.x + threadIdx.x;
    float acc = 0.0f;
    if (mode == 1) {
        for (int k = 0; k < n; k += 4) {
            const float a = x[(k + 0) * threads + i];
            const float b = x[(k + 1) * threads + i];
            const float c = x[(k + 2) * threads + i];
            const float d = x[(k + 3) * threads + i];
            acc += (a + b) + (c + d);
        }
    } else {
        for (int k = 0; k < n; ++k) {
            acc += x[k * threads + i];
            if (mode == 2 && k % 4 == 3) __syncthreads();
        }
    }
    y[i] = acc;
}

// Barriers and warp operations (docs/emulator.md, "Barriers and warp operations"). Blocks of
// 96 threads (3 warps), n iterations; in each, every warp does one __shfl_xor_sync, a
// __syncwarp (not counted) and a block barrier; warp 1 also a __ballot_sync; lanes 0-15 of warp
// 2 also a __shfl_down_sync among themselves (a warp counts the most of its lanes': 1). So
// per block: 3 n barriers and (1 + 2 + 2) n = 5 n warp operations.
// y[thread] = the thread's lane plus what its exchanges brought it (checked by the test).
// Launch: any grid of 96-thread blocks, y of one float per thread.
PIXELRNN_KERNEL void __launch_bounds__(96) selftest_count_sync_v1(float* __restrict__ y, int n) {
    const int t = threadIdx.x;
    const int lane = t % 32, warp = t / 32;
    float v = (float)lane;
    for (int k = 0; k < n; ++k) {
        v = __shfl_xor_sync(0xffffffffu, v, 1);
        __syncwarp();
        if (warp == 1) v += (float)__popc(__ballot_sync(0xffffffffu, lane < 4));
        if (warp == 2 && lane < 16) v += __shfl_down_sync(0x0000ffffu, v, 1, 16);
        __syncthreads();
    }
    y[(pixelrnn_index_t)blockIdx.x * blockDim.x + t] = v;
}

// y[i] = the sum of float4 number i of x: one 16-byte load per thread.
// Launch: n threads in all, x of 4 n floats.
PIXELRNN_KERNEL void __launch_bounds__(1024)
selftest_count_load4_v1(const float* __restrict__ x, float* __restrict__ y) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const float4 v = reinterpret_cast<const float4*>(x)[i];
    y[i] = v.x + v.y + v.z + v.w;
}

// One block of 32 threads fills 1024 floats of shared memory (static, or dynamic when
// `dynamic`) conflict-free, then y[t] = s[(t * stride) % 1024]: stride 0 is a broadcast, 1 no
// conflict, 2 a 2-way and 32 a 32-way conflict.
// Launch: grid 1, block 32; 4096 bytes of dynamic shared memory when `dynamic`.
PIXELRNN_KERNEL void __launch_bounds__(32)
selftest_count_shared_v1(const float* __restrict__ x, float* __restrict__ y, int stride,
                         int dynamic) {
    PIXELRNN_SHARED(float, fixed, [1024]);
    PIXELRNN_DYNAMIC_SHARED(float, dyn);
    float* s = dynamic ? dyn : fixed;
    const int t = threadIdx.x;
    for (int j = 0; j < 32; ++j) s[j * 32 + t] = x[j * 32 + t];
    __syncthreads();
    y[t] = s[(t * stride) % 1024];
}

// A device function's static shared array: one per template instance, as on the device.
template <int I>
PIXELRNN_DEVICE float* selftest_instance_array() {
    PIXELRNN_SHARED(float, s, [32]);
    return s;
}

// Four static shared arrays that must not alias: two declarations in this kernel and two
// template instances of one declaration. Each gets its own values before one barrier, then
// y[32 a + t] = array a at (t + 1) % 32: 100 a + (t + 1) % 32 when they are distinct.
// Launch: grid 1, block 32.
PIXELRNN_KERNEL void __launch_bounds__(32) selftest_shared_instances_v1(float* __restrict__ y) {
    PIXELRNN_SHARED(float, a0, [32]);
    PIXELRNN_SHARED(float, a1, [32]);
    float* const arrays[4] = {a0, a1, selftest_instance_array<0>(), selftest_instance_array<1>()};
    const int t = threadIdx.x;
    for (int a = 0; a < 4; ++a) arrays[a][t] = (float)(100 * a + t);
    __syncthreads();
    for (int a = 0; a < 4; ++a) y[32 * a + t] = arrays[a][(t + 1) % 32];
}

// Every thread adds 1 to acc[0] and to count[0] (atomics, which the counted build must still
// perform atomically). Launch: any grid.
PIXELRNN_KERNEL void __launch_bounds__(1024)
selftest_count_atomic_v1(float* __restrict__ acc, int* __restrict__ count) {
    atomicAdd(&acc[0], 1.0f);
    atomicAdd(&count[0], 1);
}

// A kernel the emulator cannot run (inline PTX): marked GPU-only, left out of the emulator
// build, listed with emulated = false. Never compiled to PTX either (self-test file).
#ifndef PIXELRNN_EMU
// pixelrnn: gpu-only
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
selftest_gpu_only_v1(float* __restrict__ x) {
    unsigned lane;
    asm("mov.u32 %0, %%laneid;" : "=r"(lane));
    x[threadIdx.x] = (float)lane;
}
#endif

// ---------------------------------------------------------------------------------------------
// Tensor cores (kernels/mma.cuh; tests/emulator_mma.rs).
#include "../mma.cuh"

// out[2i] = x[i] rounded to tf32 (cvt.rna), out[2i + 1] = x[i] rounded to bf16 (cvt.rn).
// Launch: grid-stride over n.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
selftest_round_v1(const float* __restrict__ x, float* __restrict__ out, int n) {
    for (pixelrnn_index_t i = pixelrnn_global_thread(); i < n; i += pixelrnn_grid_stride()) {
        out[2 * i] = pixelrnn_round_tf32(x[i]);
        out[2 * i + 1] = pixelrnn_round_bf16(x[i]);
    }
}

// One warp, one mma.m16n8k8 .tf32: d = a * b + c with a [16, 8] row-major, b [8, 8] row-major
// ([k, n]), c and d [16, 8] row-major, loaded into the fragments of the PTX ISA's layouts
// (kernels/mma.cuh); the inputs rounded to tf32 first. swap = 1 exchanges the A registers a1
// and a2, swap = 2 the B registers b0 and b1: a layout bug that must change the product.
// Launch: one block of 32 threads.
PIXELRNN_KERNEL void __launch_bounds__(32)
selftest_mma_tf32_v1(const float* __restrict__ a, const float* __restrict__ b,
                     const float* __restrict__ c, float* __restrict__ d, int swap) {
    const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    unsigned af[4] = {pixelrnn_tf32(a[g * 8 + t]), pixelrnn_tf32(a[(g + 8) * 8 + t]),
                      pixelrnn_tf32(a[g * 8 + t + 4]), pixelrnn_tf32(a[(g + 8) * 8 + t + 4])};
    unsigned bf[2] = {pixelrnn_tf32(b[t * 8 + g]), pixelrnn_tf32(b[(t + 4) * 8 + g])};
    if (swap == 1) {
        const unsigned s = af[1];
        af[1] = af[2];
        af[2] = s;
    } else if (swap == 2) {
        const unsigned s = bf[0];
        bf[0] = bf[1];
        bf[1] = s;
    }
    const float cf[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t],
                         c[(g + 8) * 8 + 2 * t + 1]};
    float df[4];
    pixelrnn_mma_tf32_m16n8k8(df, af, bf, cf);
    d[g * 8 + 2 * t] = df[0];
    d[g * 8 + 2 * t + 1] = df[1];
    d[(g + 8) * 8 + 2 * t] = df[2];
    d[(g + 8) * 8 + 2 * t + 1] = df[3];
}

// As selftest_mma_tf32_v1 for one mma.m16n8k16 .bf16: a [16, 16], b [16, 8] ([k, n]), the
// inputs rounded to bf16. swap = 1 exchanges the A registers 1 and 2 (rows g + 8 and columns
// 2t + 8 trade places), swap = 2 the B registers.
// Launch: one block of 32 threads.
PIXELRNN_KERNEL void __launch_bounds__(32)
selftest_mma_bf16_v1(const float* __restrict__ a, const float* __restrict__ b,
                     const float* __restrict__ c, float* __restrict__ d, int swap) {
    const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    unsigned af[4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        const int row = g + 8 * (r & 1), col = 2 * t + 8 * (r >> 1);
        af[r] = pixelrnn_pack_bf16x2(pixelrnn_round_bf16(a[row * 16 + col]),
                                     pixelrnn_round_bf16(a[row * 16 + col + 1]));
    }
    unsigned bf[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int k = 2 * t + 8 * r;
        bf[r] = pixelrnn_pack_bf16x2(pixelrnn_round_bf16(b[k * 8 + g]),
                                     pixelrnn_round_bf16(b[(k + 1) * 8 + g]));
    }
    if (swap == 1) {
        const unsigned s = af[1];
        af[1] = af[2];
        af[2] = s;
    } else if (swap == 2) {
        const unsigned s = bf[0];
        bf[0] = bf[1];
        bf[1] = s;
    }
    const float cf[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t],
                         c[(g + 8) * 8 + 2 * t + 1]};
    float df[4];
    pixelrnn_mma_bf16_m16n8k16(df, af, bf, cf);
    d[g * 8 + 2 * t] = df[0];
    d[g * 8 + 2 * t + 1] = df[1];
    d[(g + 8) * 8 + 2 * t] = df[2];
    d[(g + 8) * 8 + 2 * t + 1] = df[3];
}

// An mma called by 16 lanes of a warp only (the others exit): an error, as mma.sync.aligned
// is undefined on the GPU unless the whole warp executes it. Launch: one block of 32 threads.
PIXELRNN_KERNEL void __launch_bounds__(32) selftest_mma_partial_v1(float* __restrict__ d) {
    if (threadIdx.x >= 16) return;
    const unsigned a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
    const float c[4] = {0, 0, 0, 0};
    float df[4];
    pixelrnn_mma_tf32_m16n8k8(df, a, b, c);
    d[threadIdx.x] = df[0];
}

// Thread-block clusters (runtime/grid.cpp). Each block of a cluster of C blocks (along x)
// takes `rounds` rounds: in round s it writes (rank + 1) * 100 + s + t at its thread t's slot of
// buffer s % 2, waits at the cluster barrier (when `sync` != 0), then adds up the slots of all
// C blocks of its cluster for thread t; out[block * blockDim.x + t] is that sum over the rounds.
// Without the barrier a block reads slots the other blocks have not written yet.
// Launch: gridDim.x a multiple of C (the cluster shape), buf 2 * gridDim.x * blockDim.x zeros.
PIXELRNN_KERNEL void __launch_bounds__(1024)
selftest_cluster_exchange_v1(float* __restrict__ buf, float* __restrict__ out, int rounds,
                             int sync) {
    const cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
    const unsigned size = cluster.num_blocks();
    const unsigned rank = cluster.block_rank();
    const unsigned first = blockIdx.x - rank;  // the cluster's first block
    const int t = threadIdx.x;
    const pixelrnn_index_t plane = (pixelrnn_index_t)gridDim.x * blockDim.x;
    float acc = 0.0f;
    for (int s = 0; s < rounds; ++s) {
        float* b = buf + (s % 2) * plane;
        b[(pixelrnn_index_t)blockIdx.x * blockDim.x + t] = (float)((rank + 1) * 100 + s + t);
        if (sync) cluster.sync();
        for (unsigned q = 0; q < size; ++q) {
            acc += b[(pixelrnn_index_t)(first + q) * blockDim.x + t];
        }
    }
    out[(pixelrnn_index_t)blockIdx.x * blockDim.x + t] = acc;
}

// Every thread writes its block's cluster rank, the cluster's blocks and dim x*10000+y*100+z:
// out[3 * (linear block) + 0..3].
// Launch: any grid of clusters, one thread per block.
PIXELRNN_KERNEL void __launch_bounds__(1024)
selftest_cluster_rank_v1(float* __restrict__ out) {
    const pixelrnn_index_t block =
        ((pixelrnn_index_t)blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    const dim3 d = cooperative_groups::this_cluster().dim_blocks();
    out[3 * block] = (float)cooperative_groups::this_cluster().block_rank();
    out[3 * block + 1] = (float)cooperative_groups::this_cluster().num_blocks();
    out[3 * block + 2] = (float)(d.x * 10000 + d.y * 100 + d.z);
}

// The block of rank 0 returns at once while the others wait at the cluster barrier: a
// deadlock (undefined on the hardware), reported as an error.
// Launch: clusters of at least 2 blocks.
PIXELRNN_KERNEL void __launch_bounds__(1024)
selftest_cluster_exit_v1(float* __restrict__ out) {
    if (cooperative_groups::this_cluster().block_rank() == 0) return;
    cooperative_groups::this_cluster().sync();
    out[blockIdx.x] = 1.0f;
}

// cp.async (kernels/cp_async.cuh) through a shared tile, out[t] = the value that thread
// (t + 1) % blockDim.x staged, in one of five modes:
//   0: x[t] staged by 4-byte copies (zero-filled past n), committed, waited for, then a barrier;
//   1: as 0 without the wait (reads see the emulator's poison);
//   2: two groups, x[t] then x[blockDim.x + t], waited for down to one group in flight
//      (wait<1>): the first tile's values, the second tile's poison, in out[t], out[bd + t];
//   3: 16-byte copies: thread t stages x[4t..4t + 4) (zero-filled past n), out[4t..4t + 4)
//      from thread (t + 1)'s;
//   4: a 16-byte copy from x + 1, 4 bytes off its alignment (the emulator traps).
// Launch: one block of at most 256 threads; out has 4 * blockDim.x floats.
PIXELRNN_KERNEL void __launch_bounds__(256)
selftest_cp_async_v1(const float* __restrict__ x, float* __restrict__ out, int n, int mode) {
    PIXELRNN_SHARED(float, s, [4 * 256]);
    PIXELRNN_SHARED(float, s2, [256]);
    const int t = threadIdx.x, bd = blockDim.x, u = (t + 1) % bd;
    if (mode == 4) {
        pixelrnn_cp_async_f32x4(&s[4 * t], x + 1, true);
        return;
    }
    if (mode == 3) {
        pixelrnn_cp_async_f32x4(&s[4 * t], 4 * t < n ? &x[4 * t] : x, 4 * t < n);
        pixelrnn_cp_async_commit();
        pixelrnn_cp_async_wait<0>();
        __syncthreads();
        for (int c = 0; c < 4; ++c) out[4 * t + c] = s[4 * u + c];
        return;
    }
    pixelrnn_cp_async_f32(&s[t], t < n ? &x[t] : x, t < n);
    pixelrnn_cp_async_commit();
    if (mode == 2) {
        pixelrnn_cp_async_f32(&s2[t], bd + t < n ? &x[bd + t] : x, bd + t < n);
        pixelrnn_cp_async_commit();
        pixelrnn_cp_async_wait<1>();
    } else if (mode == 0) {
        pixelrnn_cp_async_wait<0>();
    }
    __syncthreads();
    out[t] = s[u];
    if (mode == 2) out[bd + t] = s2[u];
}
