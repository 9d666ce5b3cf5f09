// cluster.cuh: thread-block clusters (sm_90) for the kernels that use them: the cluster
// barrier and the block's rank in its cluster. A module that includes this header must be
// compiled for compute_90 (its first line: `// pixelrnn: arch compute_90`; the others are
// compute_80 PTX), and its kernels launched with a cluster shape (LaunchCfg::cluster; on the
// device cuLaunchKernelEx with CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION).
//
// pixelrnn_cluster_sync(): every thread of every block of the cluster arrives before any
// continues (barrier.cluster.arrive.release + barrier.cluster.wait.acquire: the global and
// shared memory writes of the cluster before the barrier are visible to the cluster after
// it). It is also a barrier of the block. The emulator implements it in runtime/grid.cpp
// (docs/emulator.md, "Thread-block clusters"): the blocks of a cluster run together and take
// turns between barriers, so a missing barrier reads the wrong phase's data.
#pragma once

#include "common.cuh"

#ifdef PIXELRNN_EMU
PIXELRNN_DEVICE void pixelrnn_cluster_sync() { ::pixelrnn_emu::cluster_sync(); }
PIXELRNN_DEVICE unsigned pixelrnn_cluster_rank() { return ::pixelrnn_emu::cluster_block_rank(); }
PIXELRNN_DEVICE unsigned pixelrnn_cluster_blocks() {
    return ::pixelrnn_emu::cluster_num_blocks();
}
#else
PIXELRNN_DEVICE void pixelrnn_cluster_sync() {
    asm volatile(
        "barrier.cluster.arrive.release.aligned;\n\t"
        "barrier.cluster.wait.acquire.aligned;" ::
            : "memory");
}
PIXELRNN_DEVICE unsigned pixelrnn_cluster_rank() {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}
PIXELRNN_DEVICE unsigned pixelrnn_cluster_blocks() {
    unsigned n;
    asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(n));
    return n;
}
#endif
