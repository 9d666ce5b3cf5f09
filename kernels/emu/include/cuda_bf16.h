// cuda_bf16.h for the CPU emulator: __nv_bfloat16 and its conversions live in emu/cuda_emu.h
// (included first by every emulated unit), so this header only has to exist for
// `#include <cuda_bf16.h>`.
#pragma once
#include "../cuda_emu.h"
