// conv_transpose2d.cu: transposed 2-D convolution, stride r, kernel k x k (k - r even),
// padding p = (k - r) / 2, NHWC activations, weight [cin, cout, k, k] (PyTorch's
// ConvTranspose2d layout): out[i*r + a - p, j*r + b - p, f] += x[i, j, c] * w[c, f, a, b], plus
// bias[f], outputs outside the [h*r, w*r] map dropped. The Multi-Scale PixelRNN's upsampling;
// it runs once per batch on an image-sized input, so one simple version per pass suffices.
// CPU twin: src/backend/cpu/conv_transpose2d.rs; host side: src/backend/cuda/conv_transpose2d.rs.
//
// Versions:
//   fwd v1:        one thread per output element, gathering over the (at most ceil(k/r)^2)
//                  input pixels whose taps reach it.
//   bwd_data v1:   one thread per input element, gathering over its k x k taps and the output
//                  features.
//   bwd_weight v1: one block per weight element reducing x * dy over all input positions
//                  (block reduction, no atomics).
//   bwd_bias v1:   one block per output feature reducing dy over all output positions.
#include "common.cuh"

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = min(ceil(n*h*r*w*r*cout / 256), 65535)
// (grid-stride loop over the outputs). Output row oy is reached by tap a from input row
// i = (oy + p - a) / r exactly when oy + p - a is a non-negative multiple of r: a runs over
// (oy + p) % r, + r, ... and i decreases as a grows.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
conv_transpose2d_fwd_v1(const float* __restrict__ x, const float* __restrict__ w,
                        const float* __restrict__ b, float* __restrict__ y, int n, int height,
                        int width, int cin, int cout, int k, int r) {
    const int pad = (k - r) / 2;
    const int oh = height * r, ow = width * r;
    const pixelrnn_index_t total = (pixelrnn_index_t)n * oh * ow * cout;
    const pixelrnn_index_t c_stride = (pixelrnn_index_t)cout * k * k;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t e = pixelrnn_global_thread(); e < total; e += stride) {
        const int f = (int)(e % cout);
        const pixelrnn_index_t pos = e / cout;
        const int ox = (int)(pos % ow);
        const int oy = (int)((pos / ow) % oh);
        const pixelrnn_index_t img = pos / ((pixelrnn_index_t)ow * oh);
        float acc = b[f];
        for (int a = (oy + pad) % r; a < k; a += r) {
            const int di = oy + pad - a;
            if (di < 0) break;
            const int i = di / r;
            if (i >= height) continue;
            for (int bb = (ox + pad) % r; bb < k; bb += r) {
                const int dj = ox + pad - bb;
                if (dj < 0) break;
                const int j = dj / r;
                if (j >= width) continue;
                const float* xp = x + ((img * height + i) * width + j) * cin;
                const float* wp = w + ((pixelrnn_index_t)f * k + a) * k + bb;  // w[0, f, a, bb]
                for (int c = 0; c < cin; ++c) {
                    acc += xp[c] * wp[c * c_stride];
                }
            }
        }
        y[e] = acc;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = min(ceil(n*h*w*cin / 256), 65535)
// (grid-stride loop over the input elements). dx[i, j, c] = sum over taps (a, bb) whose output
// (i*r + a - p, j*r + bb - p) is inside the map, and over f, of dy[that output, f] * w[c, f, a, bb].
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
conv_transpose2d_bwd_data_v1(const float* __restrict__ dy, const float* __restrict__ w,
                             float* __restrict__ dx, int n, int height, int width, int cin,
                             int cout, int k, int r) {
    const int pad = (k - r) / 2;
    const int oh = height * r, ow = width * r;
    const pixelrnn_index_t total = (pixelrnn_index_t)n * height * width * cin;
    const int f_stride = k * k;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t e = pixelrnn_global_thread(); e < total; e += stride) {
        const int c = (int)(e % cin);
        const pixelrnn_index_t pos = e / cin;
        const int j = (int)(pos % width);
        const int i = (int)((pos / width) % height);
        const pixelrnn_index_t img = pos / ((pixelrnn_index_t)width * height);
        float acc = 0.0f;
        for (int a = 0; a < k; ++a) {
            const int oy = i * r + a - pad;
            if (oy < 0 || oy >= oh) continue;
            for (int bb = 0; bb < k; ++bb) {
                const int ox = j * r + bb - pad;
                if (ox < 0 || ox >= ow) continue;
                const float* dyp = dy + ((img * oh + oy) * ow + ox) * cout;
                const float* wp = w + (((pixelrnn_index_t)c * cout) * k + a) * k + bb;
                for (int f = 0; f < cout; ++f) {
                    acc += dyp[f] * wp[f * f_stride];
                }
            }
        }
        dx[e] = acc;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = cin * cout * k * k (one block per weight
// element). dw[c, f, a, bb] = sum over input positions (img, i, j) whose output
// (i*r + a - p, j*r + bb - p) is inside the map of x[img, i, j, c] * dy[that output, f].
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
conv_transpose2d_bwd_weight_v1(const float* __restrict__ x, const float* __restrict__ dy,
                               float* __restrict__ dw, int n, int height, int width, int cin,
                               int cout, int k, int r) {
    PIXELRNN_SHARED(float, scratch, [PIXELRNN_WARP]);
    const int pad = (k - r) / 2;
    const int oh = height * r, ow = width * r;
    const pixelrnn_index_t e = blockIdx.x;
    const int bb = (int)(e % k);
    const int a = (int)((e / k) % k);
    const int f = (int)((e / ((pixelrnn_index_t)k * k)) % cout);
    const int c = (int)(e / ((pixelrnn_index_t)k * k * cout));
    const pixelrnn_index_t positions = (pixelrnn_index_t)n * height * width;
    float acc = 0.0f;
    for (pixelrnn_index_t p = threadIdx.x; p < positions; p += blockDim.x) {
        const int j = (int)(p % width);
        const int i = (int)((p / width) % height);
        const pixelrnn_index_t img = p / ((pixelrnn_index_t)width * height);
        const int oy = i * r + a - pad, ox = j * r + bb - pad;
        if (oy < 0 || oy >= oh || ox < 0 || ox >= ow) continue;
        acc += x[p * cin + c] * dy[((img * oh + oy) * ow + ox) * cout + f];
    }
    acc = pixelrnn_block_sum(acc, scratch);
    if (threadIdx.x == 0) dw[e] = acc;
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = cout (one block per output feature).
// db[f] = sum over all output positions of dy[p, f].
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
conv_transpose2d_bwd_bias_v1(const float* __restrict__ dy, float* __restrict__ db,
                             pixelrnn_index_t positions, int cout) {
    PIXELRNN_SHARED(float, scratch, [PIXELRNN_WARP]);
    const int f = blockIdx.x;
    float acc = 0.0f;
    for (pixelrnn_index_t p = threadIdx.x; p < positions; p += blockDim.x) {
        acc += dy[p * cout + f];
    }
    acc = pixelrnn_block_sum(acc, scratch);
    if (threadIdx.x == 0) db[f] = acc;
}
