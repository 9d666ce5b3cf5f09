//! The CPU backend: the reference for every op, and multi-threaded (rayon) with GEMM-based
//! convolutions so that it is also a usable engine.

pub mod bernoulli_nll;
pub mod conv_transpose2d;
pub mod elementwise;
pub mod gemm;
pub mod lstm;
pub mod lstm_at;
pub mod lstm_tile;
pub mod masked_conv2d;
pub mod masked_conv2d_at;
pub mod mirror_shift;
pub mod optim;
pub mod position;
pub mod sample_logits;
pub mod skew;
pub mod softmax_nll;

use super::{AdamStep, Backend, ConvGrads, ConvSpec, LstmState, Recurrence, RmsPropStep};
use crate::error::{Error, Result};
use crate::tensor::{same_shape, Tensor};
use lstm::{lstm_at_geometry, scan_geometry, Geometry};
use masked_conv2d::ConvGeom;

/// Host memory and the rayon thread pool.
#[derive(Clone, Debug, Default)]
pub struct CpuBackend;

impl CpuBackend {
    /// The CPU backend (uses rayon's global pool; set its size with `RAYON_NUM_THREADS` or the
    /// CLI's `--threads`).
    ///
    /// On glibc, this also asks malloc to keep freed memory instead of returning it to the
    /// system (every block from the heap, never `mmap`, no trimming): every op returns fresh
    /// buffers of several MiB, and with glibc's defaults each step paid a page fault per 4 KiB
    /// of them, about a third of a small PixelCNN training step; blocks above 32 MiB (the
    /// 32x32x3 logits) were still mapped and unmapped per step until `mmap` was switched off
    /// (docs/benchmarks.md, runs C and D). The process keeps its peak heap.
    pub fn new() -> Self {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            static ONCE: std::sync::Once = std::sync::Once::new();
            // SAFETY: mallopt only sets allocator parameters (M_TRIM_THRESHOLD = -1,
            // M_MMAP_THRESHOLD = -3; 32 MiB is glibc's largest allowed threshold on 64-bit;
            // M_MMAP_MAX = -4: 0 means no block is ever served by its own mapping, so larger
            // ones too come from the heap and are reused; glibc still maps memory when the
            // heap cannot grow).
            ONCE.call_once(|| unsafe {
                mallopt(-1, i32::MAX);
                mallopt(-3, 32 << 20);
                mallopt(-4, 0);
            });
        }
        CpuBackend
    }
}

fn conv_geom(
    op: &'static str,
    x: &Tensor<CpuBackend>,
    w: &Tensor<CpuBackend>,
    spec: &ConvSpec,
) -> Result<ConvGeom> {
    spec.validate()?;
    let [n, h, wd, cin] = x.nhwc(op)?;
    match w.shape.as_slice() {
        &[cout, wcin, kh, kw] if wcin == cin && kh == spec.kh && kw == spec.kw => Ok(ConvGeom {
            n,
            h,
            w: wd,
            cin,
            cout,
        }),
        s => Err(Error::shape(
            op,
            format!(
                "weight {s:?} does not fit input {:?} and a {}x{} kernel",
                x.shape, spec.kh, spec.kw
            ),
        )),
    }
}

fn loss_shapes(
    op: &'static str,
    logits: &Tensor<CpuBackend>,
    targets: &Tensor<CpuBackend>,
    per_target: usize,
) -> Result<usize> {
    let channels = *targets.shape.last().unwrap_or(&0);
    let lead_ok = !targets.shape.is_empty()
        && logits.shape.len() == targets.shape.len()
        && logits.shape[..logits.shape.len() - 1] == targets.shape[..targets.shape.len() - 1];
    if channels == 0 || !lead_ok || logits.shape.last() != Some(&(per_target * channels)) {
        return Err(Error::shape(
            op,
            format!(
                "logits {:?} do not match targets {:?} ({} logits per target)",
                logits.shape, targets.shape, per_target
            ),
        ));
    }
    Ok(channels)
}

/// Checks the input-to-state map and the state weight of a recurrence; returns the batch and
/// the scan geometry.
fn lstm_geometry(
    op: &'static str,
    is: &Tensor<CpuBackend>,
    w_ss: &Tensor<CpuBackend>,
    diagonal: bool,
) -> Result<(usize, Geometry)> {
    let [n, height, width, g] = is.nhwc(op)?;
    if g == 0 || g % 4 != 0 {
        return Err(Error::shape(
            op,
            format!("pre-activations need 4h features, got {g}"),
        ));
    }
    let geo = scan_geometry(op, &w_ss.shape, diagonal, height, width, g / 4)?;
    Ok((n, geo))
}

fn lstm_forward(
    op: &'static str,
    is: &Tensor<CpuBackend>,
    w_ss: &Tensor<CpuBackend>,
    rec: Recurrence,
    diagonal: bool,
) -> Result<LstmState<CpuBackend>> {
    let (n, geo) = lstm_geometry(op, is, w_ss, diagonal)?;
    let (h, c, gates) = lstm::forward(&is.data, &w_ss.data, n, &geo, lstm::fused_sweep(rec));
    let hs = vec![n, geo.height, geo.width, geo.hidden];
    Ok(LstmState {
        h: Tensor {
            shape: hs.clone(),
            data: h,
        },
        c: Tensor { shape: hs, data: c },
        gates: Tensor {
            shape: is.shape.clone(),
            data: gates,
        },
    })
}

fn lstm_backward(
    op: &'static str,
    state: &LstmState<CpuBackend>,
    w_ss: &Tensor<CpuBackend>,
    dh: &Tensor<CpuBackend>,
    rec: Recurrence,
    diagonal: bool,
) -> Result<(Tensor<CpuBackend>, Tensor<CpuBackend>)> {
    let (n, geo) = lstm_geometry(op, &state.gates, w_ss, diagonal)?;
    same_shape(op, &state.h, dh)?;
    same_shape(op, &state.c, dh)?;
    if dh.shape != [n, geo.height, geo.width, geo.hidden] {
        return Err(Error::shape(
            op,
            format!(
                "hidden-state gradient {:?} does not match the gates",
                dh.shape
            ),
        ));
    }
    let (d_is, d_w) = lstm::backward(
        &state.h.data,
        &state.c.data,
        &state.gates.data,
        &w_ss.data,
        &dh.data,
        n,
        &geo,
        lstm::fused_sweep(rec),
    );
    Ok((
        Tensor {
            shape: state.gates.shape.clone(),
            data: d_is,
        },
        Tensor {
            shape: w_ss.shape.clone(),
            data: d_w,
        },
    ))
}

/// Fails unless `(i, j)` lies in an `h x w` map.
fn position_in(op: &'static str, h: usize, w: usize, i: usize, j: usize) -> Result<()> {
    if i < h && j < w {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("position ({i}, {j}) outside a {h}x{w} map"),
        ))
    }
}

#[allow(clippy::too_many_arguments)]
fn lstm_forward_at(
    op: &'static str,
    is: &Tensor<CpuBackend>,
    w_ss: &Tensor<CpuBackend>,
    h: &mut Tensor<CpuBackend>,
    c: &mut Tensor<CpuBackend>,
    diagonal: bool,
    i: usize,
    j: usize,
) -> Result<()> {
    let (n, geo) = lstm_at_geometry(op, is, w_ss, h, c, diagonal, i, j)?;
    lstm_at::forward_at(
        &is.data,
        &w_ss.data,
        &mut h.data,
        &mut c.data,
        n,
        &geo,
        i,
        j,
    );
    Ok(())
}

fn transpose_geom(
    op: &'static str,
    x: &Tensor<CpuBackend>,
    w: &Tensor<CpuBackend>,
    stride: usize,
) -> Result<conv_transpose2d::TransposeGeom> {
    let [n, h, wd, cin] = x.nhwc(op)?;
    match w.shape.as_slice() {
        &[wcin, cout, k, k2]
            if wcin == cin && k == k2 && stride > 0 && k >= stride && (k - stride).is_multiple_of(2) && cout > 0 =>
        {
            Ok(conv_transpose2d::TransposeGeom {
                n,
                h,
                w: wd,
                cin,
                cout,
                k,
                r: stride,
            })
        }
        s => Err(Error::shape(
            op,
            format!(
                "weight {s:?} should be [cin, cout, k, k] with cin = {cin} and k - stride a non-negative even number (input {:?}, stride {stride})",
                x.shape
            ),
        )),
    }
}

impl Backend for CpuBackend {
    type Storage = Vec<f32>;

    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn alloc_zeros(&self, len: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; len])
    }

    fn upload(&self, data: &[f32]) -> Result<Vec<f32>> {
        Ok(data.to_vec())
    }

    fn download(&self, data: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(data.clone())
    }

    fn masked_conv2d_forward(
        &self,
        x: &Tensor<Self>,
        w: &Tensor<Self>,
        b: &Tensor<Self>,
        spec: &ConvSpec,
    ) -> Result<Tensor<Self>> {
        let g = conv_geom("masked_conv2d_forward", x, w, spec)?;
        if b.shape != [g.cout] {
            return Err(Error::shape(
                "masked_conv2d_forward",
                format!("bias {:?} should be [{}]", b.shape, g.cout),
            ));
        }
        Ok(Tensor {
            shape: vec![g.n, g.h, g.w, g.cout],
            data: masked_conv2d::forward(&x.data, &w.data, &b.data, g, spec),
        })
    }

    fn masked_conv2d_backward(
        &self,
        x: &Tensor<Self>,
        w: &Tensor<Self>,
        dy: &Tensor<Self>,
        spec: &ConvSpec,
        need_dx: bool,
    ) -> Result<ConvGrads<Self>> {
        let g = conv_geom("masked_conv2d_backward", x, w, spec)?;
        if dy.shape != [g.n, g.h, g.w, g.cout] {
            return Err(Error::shape(
                "masked_conv2d_backward",
                format!("output gradient {:?} does not match the output", dy.shape),
            ));
        }
        let (dx, dw, db) = masked_conv2d::backward(&x.data, &w.data, &dy.data, g, spec, need_dx);
        Ok(ConvGrads {
            dx: dx.map(|data| Tensor {
                shape: x.shape.clone(),
                data,
            }),
            dw: Tensor {
                shape: w.shape.clone(),
                data: dw,
            },
            db: Tensor {
                shape: vec![g.cout],
                data: db,
            },
        })
    }

    fn conv_transpose2d_forward(
        &self,
        x: &Tensor<Self>,
        w: &Tensor<Self>,
        b: &Tensor<Self>,
        stride: usize,
    ) -> Result<Tensor<Self>> {
        let g = transpose_geom("conv_transpose2d_forward", x, w, stride)?;
        if b.shape != [g.cout] {
            return Err(Error::shape(
                "conv_transpose2d_forward",
                format!("bias {:?} should be [{}]", b.shape, g.cout),
            ));
        }
        Ok(Tensor {
            shape: vec![g.n, g.h * g.r, g.w * g.r, g.cout],
            data: conv_transpose2d::forward(&x.data, &w.data, &b.data, g),
        })
    }

    fn conv_transpose2d_backward(
        &self,
        x: &Tensor<Self>,
        w: &Tensor<Self>,
        dy: &Tensor<Self>,
        stride: usize,
        need_dx: bool,
    ) -> Result<ConvGrads<Self>> {
        let g = transpose_geom("conv_transpose2d_backward", x, w, stride)?;
        if dy.shape != [g.n, g.h * g.r, g.w * g.r, g.cout] {
            return Err(Error::shape(
                "conv_transpose2d_backward",
                format!(
                    "output gradient {:?} does not fit input {:?}",
                    dy.shape, x.shape
                ),
            ));
        }
        let (dx, dw, db) = conv_transpose2d::backward(&x.data, &w.data, &dy.data, g, need_dx);
        Ok(ConvGrads {
            dx: need_dx.then(|| Tensor {
                shape: x.shape.clone(),
                data: dx,
            }),
            dw: Tensor {
                shape: w.shape.clone(),
                data: dw,
            },
            db: Tensor {
                shape: vec![g.cout],
                data: db,
            },
        })
    }

    fn relu_forward(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        Ok(Tensor {
            shape: x.shape.clone(),
            data: elementwise::relu_forward(&x.data),
        })
    }

    fn relu_backward(&self, y: &Tensor<Self>, dy: &Tensor<Self>) -> Result<Tensor<Self>> {
        same_shape("relu_backward", y, dy)?;
        Ok(Tensor {
            shape: y.shape.clone(),
            data: elementwise::relu_backward(&y.data, &dy.data),
        })
    }

    fn add(&self, a: &Tensor<Self>, b: &Tensor<Self>) -> Result<Tensor<Self>> {
        same_shape("add", a, b)?;
        Ok(Tensor {
            shape: a.shape.clone(),
            data: elementwise::add(&a.data, &b.data),
        })
    }

    fn softmax_nll(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        grad_scale: f32,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        let channels = loss_shapes("softmax_nll", logits, targets, softmax_nll::LEVELS)?;
        let mut nll = vec![0.0; targets.numel()];
        let mut dlogits = vec![0.0; logits.numel()];
        if !softmax_nll::softmax_nll(
            &logits.data,
            &targets.data,
            channels,
            grad_scale,
            &mut nll,
            &mut dlogits,
        ) {
            return Err(Error::shape(
                "softmax_nll",
                "targets must be integers in 0..=255",
            ));
        }
        Ok((
            Tensor {
                shape: targets.shape.clone(),
                data: nll,
            },
            Tensor {
                shape: logits.shape.clone(),
                data: dlogits,
            },
        ))
    }

    fn bernoulli_nll(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        grad_scale: f32,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        loss_shapes("bernoulli_nll", logits, targets, 1)?;
        let mut nll = vec![0.0; targets.numel()];
        let mut dlogits = vec![0.0; logits.numel()];
        if !bernoulli_nll::bernoulli_nll(
            &logits.data,
            &targets.data,
            grad_scale,
            &mut nll,
            &mut dlogits,
        ) {
            return Err(Error::shape("bernoulli_nll", "targets must be 0 or 1"));
        }
        Ok((
            Tensor {
                shape: targets.shape.clone(),
                data: nll,
            },
            Tensor {
                shape: logits.shape.clone(),
                data: dlogits,
            },
        ))
    }

    fn row_lstm_forward(
        &self,
        is: &Tensor<Self>,
        w_ss: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<LstmState<Self>> {
        lstm_forward("row_lstm_forward", is, w_ss, rec, false)
    }

    fn row_lstm_backward(
        &self,
        state: &LstmState<Self>,
        w_ss: &Tensor<Self>,
        dh: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        lstm_backward("row_lstm_backward", state, w_ss, dh, rec, false)
    }

    fn diag_lstm_forward(
        &self,
        is: &Tensor<Self>,
        w_ss: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<LstmState<Self>> {
        lstm_forward("diag_lstm_forward", is, w_ss, rec, true)
    }

    fn diag_lstm_backward(
        &self,
        state: &LstmState<Self>,
        w_ss: &Tensor<Self>,
        dh: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        lstm_backward("diag_lstm_backward", state, w_ss, dh, rec, true)
    }

    fn skew(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        let [n, h, w, c] = x.nhwc("skew")?;
        if w == 0 {
            return Err(Error::shape("skew", "width must be positive"));
        }
        Ok(Tensor {
            shape: vec![n, h, super::skewed_width(h, w), c],
            data: skew::skew(&x.data, n, h, w, c),
        })
    }

    fn unskew(&self, s: &Tensor<Self>) -> Result<Tensor<Self>> {
        let [n, h, ws, c] = s.nhwc("unskew")?;
        let w = super::unskewed_width(h, ws).ok_or_else(|| {
            Error::shape(
                "unskew",
                format!("no image of height {h} has a skewed map {ws} wide"),
            )
        })?;
        Ok(Tensor {
            shape: vec![n, h, w, c],
            data: skew::unskew(&s.data, n, h, w, c),
        })
    }

    fn mirror_width(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        let [n, h, w, c] = x.nhwc("mirror_width")?;
        Ok(Tensor {
            shape: x.shape.clone(),
            data: mirror_shift::mirror_width(&x.data, n, h, w, c),
        })
    }

    fn shift_down(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        let [n, h, w, c] = x.nhwc("shift_down")?;
        Ok(Tensor {
            shape: x.shape.clone(),
            data: mirror_shift::shift_rows(&x.data, n, h, w, c, true),
        })
    }

    fn shift_up(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        let [n, h, w, c] = x.nhwc("shift_up")?;
        Ok(Tensor {
            shape: x.shape.clone(),
            data: mirror_shift::shift_rows(&x.data, n, h, w, c, false),
        })
    }

    fn sum(&self, x: &Tensor<Self>) -> Result<f64> {
        Ok(elementwise::sum(&x.data))
    }

    fn sum_squares(&self, x: &Tensor<Self>) -> Result<f64> {
        Ok(elementwise::sum_squares(&x.data))
    }

    fn scale_inplace(&self, x: &mut Tensor<Self>, s: f32) -> Result<()> {
        elementwise::scale_inplace(&mut x.data, s);
        Ok(())
    }

    fn read_position(&self, x: &Tensor<Self>, i: usize, j: usize) -> Result<Tensor<Self>> {
        let [n, h, w, f] = x.nhwc("read_position")?;
        position_in("read_position", h, w, i, j)?;
        Ok(Tensor {
            shape: vec![n, f],
            data: position::read_position(&x.data, n, h, w, f, i, j),
        })
    }

    fn write_position(
        &self,
        x: &mut Tensor<Self>,
        i: usize,
        j: usize,
        v: &Tensor<Self>,
    ) -> Result<()> {
        let [n, h, w, f] = x.nhwc("write_position")?;
        position_in("write_position", h, w, i, j)?;
        if v.shape != [n, f] {
            return Err(Error::shape(
                "write_position",
                format!("values {:?} do not fit map {:?}", v.shape, x.shape),
            ));
        }
        position::write_position(&mut x.data, n, h, w, f, i, j, &v.data);
        Ok(())
    }

    fn masked_conv2d_pack(&self, w: &Tensor<Self>, spec: &ConvSpec) -> Result<Tensor<Self>> {
        spec.validate()?;
        match w.shape.as_slice() {
            &[cout, cin, kh, kw] if kh == spec.kh && kw == spec.kw => Ok(Tensor {
                shape: vec![spec.taps().len() * cin, cout],
                data: masked_conv2d_at::pack(&w.data, cin, cout, spec),
            }),
            s => Err(Error::shape(
                "masked_conv2d_pack",
                format!("weight {s:?} is not [cout, cin, {}, {}]", spec.kh, spec.kw),
            )),
        }
    }

    fn masked_conv2d_forward_at(
        &self,
        x: &Tensor<Self>,
        packed: &Tensor<Self>,
        b: &Tensor<Self>,
        spec: &ConvSpec,
        i: usize,
        j: usize,
    ) -> Result<Tensor<Self>> {
        const OP: &str = "masked_conv2d_forward_at";
        spec.validate()?;
        let [n, h, w, cin] = x.nhwc(OP)?;
        position_in(OP, h, w, i, j)?;
        let cout = b.numel();
        if b.shape != [cout] || packed.shape != [spec.taps().len() * cin, cout] {
            return Err(Error::shape(
                OP,
                format!(
                    "packed weight {:?} and bias {:?} do not fit input {:?}",
                    packed.shape, b.shape, x.shape
                ),
            ));
        }
        let g = ConvGeom { n, h, w, cin, cout };
        Ok(Tensor {
            shape: vec![n, cout],
            data: masked_conv2d_at::forward_at(&x.data, &packed.data, &b.data, g, spec, i, j),
        })
    }

    fn row_lstm_forward_at(
        &self,
        is: &Tensor<Self>,
        w_ss: &Tensor<Self>,
        h: &mut Tensor<Self>,
        c: &mut Tensor<Self>,
        i: usize,
        j: usize,
    ) -> Result<()> {
        lstm_forward_at("row_lstm_forward_at", is, w_ss, h, c, false, i, j)
    }

    fn diag_lstm_forward_at(
        &self,
        is: &Tensor<Self>,
        w_ss: &Tensor<Self>,
        h: &mut Tensor<Self>,
        c: &mut Tensor<Self>,
        i: usize,
        j: usize,
    ) -> Result<()> {
        lstm_forward_at("diag_lstm_forward_at", is, w_ss, h, c, true, i, j)
    }

    fn rmsprop_update(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        ms: &mut Tensor<Self>,
        step: RmsPropStep,
    ) -> Result<()> {
        same_shape("rmsprop_update", param, grad)?;
        same_shape("rmsprop_update", param, ms)?;
        optim::rmsprop_update(&mut param.data, &grad.data, &mut ms.data, step);
        Ok(())
    }

    fn adam_update(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        m: &mut Tensor<Self>,
        v: &mut Tensor<Self>,
        step: AdamStep,
    ) -> Result<()> {
        same_shape("adam_update", param, grad)?;
        same_shape("adam_update", param, m)?;
        same_shape("adam_update", param, v)?;
        optim::adam_update(&mut param.data, &grad.data, &mut m.data, &mut v.data, step);
        Ok(())
    }

    fn sample_logits(
        &self,
        logits: &Tensor<Self>,
        uniforms: &Tensor<Self>,
        binary: bool,
    ) -> Result<Tensor<Self>> {
        let per_value = if binary { 1 } else { softmax_nll::LEVELS };
        let channels = loss_shapes("sample_logits", logits, uniforms, per_value)?;
        let data = if binary {
            sample_logits::sample_binary(&logits.data, &uniforms.data)
        } else {
            sample_logits::sample_softmax(&logits.data, &uniforms.data, channels)
        };
        Ok(Tensor {
            shape: uniforms.shape.clone(),
            data,
        })
    }
}
