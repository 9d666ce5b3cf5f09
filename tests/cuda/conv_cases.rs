//! The convolution cases shared by the convolution parity modules (conv, conv_mma): [`Case`]
//! (a map, channel counts and a spec), [`cases`] (the shapes the models use) and small
//! helpers. No tests here.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::{ConvSpec, Mask};

/// One convolution to check: map `n x h x w x cin` -> `cout` features under `spec` (also the
/// tensor-core cases of conv_mma.rs).
pub(crate) struct Case {
    pub what: &'static str,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
    pub spec: ConvSpec,
}

pub(crate) fn case(
    what: &'static str,
    [n, h, w]: [usize; 3],
    cin: usize,
    cout: usize,
    spec: ConvSpec,
) -> Case {
    Case {
        what,
        n,
        h,
        w,
        cin,
        cout,
        spec,
    }
}

/// The shapes the models use (MODELS.md), on small odd maps.
pub(crate) fn cases() -> Vec<Case> {
    let plain = |kh, kw, mask, groups, cin, cout| ConvSpec::new(kh, kw, mask, groups, cin, cout);
    vec![
        // PixelCNN / PixelRNN first layer, grey and RGB; the kernel is larger than the map.
        case(
            "7x7 mask A, C=1",
            [2, 5, 7],
            1,
            12,
            plain(7, 7, Mask::A, 1, 1, 12),
        ),
        case(
            "7x7 mask A, C=3",
            [1, 5, 6],
            3,
            16,
            plain(7, 7, Mask::A, 3, 3, 16),
        ),
        // PixelCNN body; > 64 positions and > 64 features: several v2 tiles both ways, and a
        // K (5 taps x 7 inputs = 35) that is not a multiple of the 16-wide K chunk.
        case(
            "3x3 mask B, C=3",
            [2, 6, 7],
            7,
            67,
            plain(3, 3, Mask::B, 3, 7, 67),
        ),
        // Row LSTM input-to-state: 1xk mask B, 2h -> 4h with out_block = h (gate blocks).
        case(
            "1x3 mask B gate blocks, h=5, C=3",
            [2, 3, 5],
            10,
            20,
            ConvSpec {
                out_block: 5,
                ..plain(1, 3, Mask::B, 3, 10, 20)
            },
        ),
        case(
            "1x5 mask B, C=1",
            [1, 4, 7],
            4,
            6,
            plain(1, 5, Mask::B, 1, 4, 6),
        ),
        // Output head and residual 1x1 layers.
        case(
            "1x1 mask B, C=3",
            [2, 3, 5],
            6,
            9,
            plain(1, 1, Mask::B, 3, 6, 9),
        ),
        // More positions (270) than threads in a reduction block: the strided loops of the
        // weight and bias reductions run more than once.
        case(
            "1x1 unmasked",
            [2, 9, 15],
            5,
            7,
            plain(1, 1, Mask::None, 3, 5, 7),
        ),
        // Unmasked taps after the centre (conditioning convolutions), tall kernel.
        case(
            "3x1 unmasked",
            [2, 5, 7],
            3,
            4,
            plain(3, 1, Mask::None, 1, 3, 4),
        ),
        case(
            "3x3 unmasked",
            [1, 4, 5],
            4,
            5,
            plain(3, 3, Mask::None, 3, 4, 5),
        ),
        // Gated PixelCNN's vertical stack: the rows above and the whole centre row, no group
        // rule (mask code NONE with the taps cut after the centre row).
        case(
            "3x3 vertical, C=3",
            [2, 5, 6],
            6,
            8,
            plain(3, 3, Mask::Vertical, 3, 6, 8),
        ),
        case(
            "7x7 vertical, C=1",
            [1, 6, 9],
            1,
            8,
            plain(7, 7, Mask::Vertical, 1, 1, 8),
        ),
        // No live tap at all: the output is the bias, every gradient but db is 0.
        case(
            "1x1 mask A, C=1",
            [2, 3, 3],
            3,
            4,
            plain(1, 1, Mask::A, 1, 3, 4),
        ),
        // Weight gradient v2 (128x128 tiles, K split over position chunks of a multiple of 8):
        // 2 x 2 tiles (5 taps x 30 = 150 columns, 130 outputs), 2 position splits (899
        // positions: 456 + 443, the last ending inside a chunk of 8).
        case(
            "3x3 mask B, C=3, 2x2 tiles, 2 splits",
            [1, 29, 31],
            30,
            130,
            plain(3, 3, Mask::B, 3, 30, 130),
        ),
        // One tile, 2 splits (1150 positions: 576 + 574), channel group C=1 at the centre.
        case(
            "3x3 mask A, C=1, 2 splits",
            [2, 23, 25],
            6,
            26,
            plain(3, 3, Mask::A, 1, 6, 26),
        ),
    ]
}

/// The CPU twin.
pub(crate) fn cpu() -> CpuBackend {
    CpuBackend::new()
}

pub(crate) use crate::download;
