// logistic_mixture.cu: the discretized logistic mixture likelihood of PixelCNN++ (Salimans et
// al., 2017) on the output head: the NLL fused with its gradient, and the draw of a pixel.
// CPU twin: src/backend/cpu/logistic_mixture.rs. Formulas and decisions:
// docs/logistic-mixture.md.
//
// Versions:
//   v1 (fwd_bwd): one warp per position, lane k = component k (K <= 32); each lane computes its
//       component's log-probability of every channel of the pixel and its derivatives, warp
//       butterflies give the log-sum-exps over components (one per channel prefix), each lane
//       writes its component's gradient (lanes write consecutive floats). Reference version.
//   v1 (sample): one warp per row, lane k = component k; a warp vote refuses non-finite
//       parameters, a warp inclusive scan inverts the component CDF, lane 0 draws R, G, B.
//
// Layout (shared with the CPU twin), P = K (1 + 2C + C(C-1)/2) outputs per position:
//   params   [positions, P]   [0, K) mixture logits; K + c K + k the means; K + C K + c K + k
//                             the log-scales (clamped below at -7); for C = 3, K + 2 C K + j K + k
//                             the coefficients j = 0, 1, 2 before their tanh:
//                             mean_G += tanh(c0) x_R, mean_B += tanh(c1) x_R + tanh(c2) x_G,
//                             x = v / 127.5 - 1 the target (or drawn) values in [-1, 1]
//   targets  [positions, C]   integer values 0..255 stored as floats
//   nll      [positions, C]   channel c: -log p(x_c | x_<c) under the mixture (the pixel's
//                             channels sum to its NLL)
//   dparams  same as params   gradient of the summed NLL, times grad_scale
//   uniforms [rows, C + 1]    u in [0, 1): the component's, then one per channel
//   out      [rows, C]        drawn values 0..255 as floats; NaN for non-finite parameters
// A target that is not an integer in 0..255 (or is nan) gives nan in that position's nll and
// dparams; the loss_targets check launched beside it reports it (src/backend/cuda/loss_targets.rs).
#include "common.cuh"

#define LOGISTIC_MIXTURE_LOG_SCALE_MIN (-7.0f)
#define LOGISTIC_MIXTURE_HALF_BIN (1.0f / 255.0f)
#define LOGISTIC_MIXTURE_LN2 0.693147180559945f

// log P(bin v) under one logistic component and its derivatives w.r.t. the mean and the raw
// log-scale.
struct logistic_mixture_bin {
    float logp;
    float dmean;
    float dlog_scale;
};

// log(1 - e^-d) for d > 0, accurate at both ends.
PIXELRNN_DEVICE float logistic_mixture_log1mexp(float d) {
    return d <= LOGISTIC_MIXTURE_LN2 ? logf(-expm1f(-d)) : log1pf(-expf(-d));
}

// With a, b the standardised upper and lower bin edges and d = a - b: log sigmoid(a) at 0,
// log(1 - sigmoid(b)) at 255, else log sigmoid(a) + log sigmoid(-b) + log(1 - e^-d), which
// equals log(sigmoid(a) - sigmoid(b)) exactly and is stable everywhere.
PIXELRNN_DEVICE logistic_mixture_bin logistic_mixture_bin_of(float v, float x, float m,
                                                             float ls_raw) {
    const bool clamped = ls_raw < LOGISTIC_MIXTURE_LOG_SCALE_MIN;
    const float ls = clamped ? LOGISTIC_MIXTURE_LOG_SCALE_MIN : ls_raw;
    const float inv_s = expf(-ls);
    const float mid = inv_s * (x - m);
    const float half = inv_s * LOGISTIC_MIXTURE_HALF_BIN;
    const float a = mid + half;
    const float b = mid - half;
    const float d = half + half;
    float logp, ga, gb, gdd;
    if (v == 0.0f) {
        logp = -pixelrnn_softplus(-a);
        ga = pixelrnn_sigmoid(-a);
        gb = 0.0f;
        gdd = 0.0f;
    } else if (v == 255.0f) {
        logp = -pixelrnn_softplus(b);
        ga = 0.0f;
        gb = -pixelrnn_sigmoid(b);
        gdd = 0.0f;
    } else {
        // d * d/dd log(1 - e^-d) = d / (e^d - 1), which tends to 1 as d -> 0.
        gdd = d > 0.0f ? d / expm1f(d) : 1.0f;
        logp = -pixelrnn_softplus(-a) - pixelrnn_softplus(b) + logistic_mixture_log1mexp(d);
        ga = pixelrnn_sigmoid(-a);
        gb = -pixelrnn_sigmoid(b);
    }
    logistic_mixture_bin out;
    out.logp = logp;
    out.dmean = -inv_s * (ga + gb);
    // a, b and d are proportional to e^-ls: d/dls of each is minus itself.
    out.dlog_scale = clamped ? 0.0f : -(a * ga + b * gb + gdd);
    return out;
}

// log sum exp over the active lanes (inactive lanes hold -inf).
PIXELRNN_DEVICE float logistic_mixture_warp_lse(float z, bool active) {
    const float max = pixelrnn_warp_max(z);
    const float sum = pixelrnn_warp_sum(active ? expf(z - max) : 0.0f);
    return max + logf(sum);
}

// Launch: blockDim.x = PIXELRNN_BLOCK (8 warps), gridDim.x = ceil(positions / 8).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
logistic_mixture_fwd_bwd_v1(const float* __restrict__ params, const float* __restrict__ targets,
                            float* __restrict__ nll, float* __restrict__ dparams,
                            pixelrnn_index_t positions, int channels, int mixtures,
                            float grad_scale) {
    const int lane = threadIdx.x % PIXELRNN_WARP;
    const pixelrnn_index_t warp =
        ((pixelrnn_index_t)blockIdx.x * blockDim.x + threadIdx.x) / PIXELRNN_WARP;
    if (warp >= positions) return;  // whole warp leaves together: shuffles stay full-mask

    const int K = mixtures;
    const int C = channels;
    const int P = K * (1 + 2 * C + C * (C - 1) / 2);
    const int mean = K, scale = K + C * K, coef = K + 2 * C * K;
    const float* p = params + warp * (pixelrnn_index_t)P;
    float* dp = dparams + warp * (pixelrnn_index_t)P;
    const float neg_inf = __int_as_float(0xff800000);
    const float nan = __int_as_float(0x7fffffff);

    bool valid = true;
    float tv[3] = {0.0f, 0.0f, 0.0f};
    float x[3] = {0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int ch = 0; ch < 3; ++ch) {
        if (ch < C) {
            tv[ch] = targets[warp * C + ch];
            valid = valid && tv[ch] >= 0.0f && tv[ch] <= 255.0f && tv[ch] == rintf(tv[ch]);
            x[ch] = tv[ch] / 127.5f - 1.0f;
        }
    }

    const bool active = lane < K;
    const int j = active ? lane : 0;
    float th[3] = {0.0f, 0.0f, 0.0f};
    if (C == 3) {
#pragma unroll
        for (int q = 0; q < 3; ++q) th[q] = tanhf(p[coef + q * K + j]);
    }
    // z[c]: the component's logit plus the log-probabilities of the channels before c.
    float z[4];
    logistic_mixture_bin bins[3];
    z[0] = active ? p[j] : neg_inf;
#pragma unroll
    for (int ch = 0; ch < 3; ++ch) {
        if (ch < C) {
            float m = p[mean + ch * K + j];
            if (ch == 1) m += th[0] * x[0];
            if (ch == 2) m += th[1] * x[0] + th[2] * x[1];
            bins[ch] = logistic_mixture_bin_of(tv[ch], x[ch], m, p[scale + ch * K + j]);
            z[ch + 1] = active ? z[ch] + bins[ch].logp : neg_inf;
        } else {
            bins[ch].logp = bins[ch].dmean = bins[ch].dlog_scale = 0.0f;
            z[ch + 1] = neg_inf;
        }
    }
    float a[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
        a[q] = q <= C ? logistic_mixture_warp_lse(z[q], active) : 0.0f;
    }
    if (lane == 0) {
#pragma unroll
        for (int ch = 0; ch < 3; ++ch) {
            if (ch < C) nll[warp * C + ch] = valid ? a[ch] - a[ch + 1] : nan;
        }
    }
    if (!active) return;
    const float z_last = C == 3 ? z[3] : z[1];
    const float a_last = C == 3 ? a[3] : a[1];
    const float q = expf(z[0] - a[0]);
    const float r = expf(z_last - a_last);
    dp[j] = valid ? (q - r) * grad_scale : nan;
    float dmu[3];
#pragma unroll
    for (int ch = 0; ch < 3; ++ch) {
        if (ch < C) {
            dmu[ch] = -r * bins[ch].dmean * grad_scale;
            dp[mean + ch * K + j] = valid ? dmu[ch] : nan;
            dp[scale + ch * K + j] = valid ? -r * bins[ch].dlog_scale * grad_scale : nan;
        }
    }
    if (C == 3) {
        dp[coef + j] = valid ? dmu[1] * x[0] * (1.0f - th[0] * th[0]) : nan;
        dp[coef + K + j] = valid ? dmu[2] * x[0] * (1.0f - th[1] * th[1]) : nan;
        dp[coef + 2 * K + j] = valid ? dmu[2] * x[1] * (1.0f - th[2] * th[2]) : nan;
    }
}

// Inclusive prefix sum over the lanes of a full warp (Hillis-Steele with shuffles).
PIXELRNN_DEVICE float logistic_mixture_warp_scan(float v, int lane) {
#pragma unroll
    for (int offset = 1; offset < PIXELRNN_WARP; offset <<= 1) {
        const float y = __shfl_up_sync(PIXELRNN_FULL_MASK, v, offset);
        if (lane >= offset) v += y;
    }
    return v;
}

// Launch: blockDim.x = PIXELRNN_BLOCK (8 warps), gridDim.x = ceil(rows / 8). temperature 0
// takes the most likely component and each mean's bin; inv_temperature = 1 / temperature
// (computed once on the host) otherwise.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
logistic_mixture_sample_v1(const float* __restrict__ params, const float* __restrict__ uniforms,
                           float* __restrict__ out, pixelrnn_index_t rows, int channels,
                           int mixtures, float temperature, float inv_temperature) {
    const int lane = threadIdx.x % PIXELRNN_WARP;
    const pixelrnn_index_t warp =
        ((pixelrnn_index_t)blockIdx.x * blockDim.x + threadIdx.x) / PIXELRNN_WARP;
    if (warp >= rows) return;  // whole warp leaves together: shuffles stay full-mask

    const int K = mixtures;
    const int C = channels;
    const int P = K * (1 + 2 * C + C * (C - 1) / 2);
    const int mean = K, scale = K + C * K, coef = K + 2 * C * K;
    const float* p = params + warp * (pixelrnn_index_t)P;
    const float* u = uniforms + warp * (C + 1);
    const float neg_inf = __int_as_float(0xff800000);

    int bad = 0;
    for (int i = lane; i < P; i += PIXELRNN_WARP) bad |= !(fabsf(p[i]) <= PIXELRNN_FLT_MAX);
    if (__any_sync(PIXELRNN_FULL_MASK, bad)) {
        if (lane < C) out[warp * C + lane] = __int_as_float(0x7fffffff);
        return;  // the whole warp leaves together
    }

    const bool active = lane < K;
    const bool greedy = temperature == 0.0f;
    int pick;
    if (greedy) {
        const float l = active ? p[lane] : neg_inf;
        const float max = pixelrnn_warp_max(l);
        pick = __ffs((int)__ballot_sync(PIXELRNN_FULL_MASK, active && l == max)) - 1;
    } else {
        const float l = active ? p[lane] * inv_temperature : neg_inf;
        const float max = pixelrnn_warp_max(l);
        const float w = logistic_mixture_warp_scan(active ? expf(l - max) : 0.0f, lane);
        const float total = __shfl_sync(PIXELRNN_FULL_MASK, w, K - 1);
        const float target = u[0] * total;
        const unsigned hits = __ballot_sync(PIXELRNN_FULL_MASK, active && target < w);
        pick = hits ? __ffs((int)hits) - 1 : K - 1;
    }
    if (lane != 0) return;
    float x[3] = {0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int ch = 0; ch < 3; ++ch) {
        if (ch >= C) break;
        float m = p[mean + ch * K + pick];
        if (ch == 1) m += tanhf(p[coef + pick]) * x[0];
        if (ch == 2) m += tanhf(p[coef + K + pick]) * x[0] + tanhf(p[coef + 2 * K + pick]) * x[1];
        float y = m;
        if (!greedy) {
            const float ls = fmaxf(p[scale + ch * K + pick], LOGISTIC_MIXTURE_LOG_SCALE_MIN);
            const float uc = u[1 + ch];
            // The logistic's inverse CDF at u: m + s log(u / (1 - u)).
            y = m + temperature * expf(ls) * (logf(uc) - log1pf(-uc));
        }
        // The bin whose edges enclose y; fmaxf/fminf send -inf to 0 and +inf to 255.
        const float v = fminf(fmaxf(rintf((y + 1.0f) * 127.5f), 0.0f), 255.0f);
        out[warp * C + ch] = v;
        x[ch] = v / 127.5f - 1.0f;
    }
}
