//! The [`Backend`] trait's implementation for [`CpuBackend`]: each op's shape check (one call
//! into backend::geometry) and its kernel in the op's module, kept apart from the backend's
//! state and helpers in cpu/mod.rs.

use super::*;

impl Backend for CpuBackend {
    type Storage = Vec<f32>;

    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn alloc_zeros(&self, len: usize) -> Result<Vec<f32>> {
        // Large buffers through the fallible path: a size that cannot fit is an error, not an
        // abort. Small ones keep `vec!` (calloc's zeroed pages, no extra pass).
        if len >= LARGE_ALLOC {
            return crate::memory::try_zeros(len);
        }
        Ok(vec![0.0; len])
    }

    fn upload(&self, data: &[f32]) -> Result<Vec<f32>> {
        if data.len() >= LARGE_ALLOC {
            return crate::memory::try_copy(data);
        }
        Ok(data.to_vec())
    }

    fn download(&self, data: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(data.clone())
    }

    fn precision(&self) -> Precision {
        Precision::from_code(self.precision.load(Ordering::Relaxed))
    }

    fn set_precision(&self, precision: Precision) {
        self.precision.store(precision.code(), Ordering::Relaxed);
    }

    fn masked_conv2d_forward(
        &self,
        x: &Tensor<Self>,
        w: &Tensor<Self>,
        b: &Tensor<Self>,
        spec: &ConvSpec,
    ) -> Result<Tensor<Self>> {
        let g = ConvGeom::forward("masked_conv2d_forward", x, w, b, spec)?;
        Ok(Tensor {
            shape: g.out_shape().to_vec(),
            data: masked_conv2d_precision::forward(
                &x.data,
                &w.data,
                &b.data,
                g,
                spec,
                self.precision(),
            ),
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
        let g = ConvGeom::backward("masked_conv2d_backward", x, w, dy, spec)?;
        let (dx, dw, db) = masked_conv2d_precision::backward(
            &x.data,
            &w.data,
            &dy.data,
            g,
            spec,
            need_dx,
            self.precision(),
        );
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
        let g = TransposeGeom::forward("conv_transpose2d_forward", x, w, b, stride)?;
        Ok(Tensor {
            shape: g.out_shape().to_vec(),
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
        let g = TransposeGeom::backward("conv_transpose2d_backward", x, w, dy, stride)?;
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
        same_shapes("relu_backward", y, &[dy])?;
        Ok(Tensor {
            shape: y.shape.clone(),
            data: elementwise::relu_backward(&y.data, &dy.data),
        })
    }

    fn add(&self, a: &Tensor<Self>, b: &Tensor<Self>) -> Result<Tensor<Self>> {
        same_shapes("add", a, &[b])?;
        Ok(Tensor {
            shape: a.shape.clone(),
            data: elementwise::add(&a.data, &b.data),
        })
    }

    fn gated_forward(&self, pre: &Tensor<Self>) -> Result<Tensor<Self>> {
        let g = GatedGeom::forward("gated_forward", pre)?;
        Ok(Tensor {
            shape: g.out_shape(pre),
            data: gated::forward(&pre.data, g),
        })
    }

    fn gated_backward(&self, pre: &Tensor<Self>, dy: &Tensor<Self>) -> Result<Tensor<Self>> {
        let g = GatedGeom::backward("gated_backward", pre, dy)?;
        Ok(Tensor {
            shape: pre.shape.clone(),
            data: gated::backward(&pre.data, &dy.data, g),
        })
    }

    fn class_bias_forward(
        &self,
        x: &Tensor<Self>,
        table: &Tensor<Self>,
        labels: &Tensor<Self>,
    ) -> Result<Tensor<Self>> {
        const OP: &str = "class_bias_forward";
        let g = crate::backend::geometry::class_bias::class_bias_table(OP, x, table, labels)?;
        let classes = class_bias::classes_of(OP, &labels.data, g.classes)?;
        Ok(Tensor {
            shape: x.shape.clone(),
            data: class_bias::forward(&x.data, &table.data, &classes, g.features),
        })
    }

    fn class_bias_backward(
        &self,
        dy: &Tensor<Self>,
        labels: &Tensor<Self>,
        classes: usize,
    ) -> Result<Tensor<Self>> {
        const OP: &str = "class_bias_backward";
        let g = crate::backend::geometry::class_bias::class_bias(OP, dy, labels, classes)?;
        let k = class_bias::classes_of(OP, &labels.data, classes)?;
        Ok(Tensor {
            shape: vec![classes, g.features],
            data: class_bias::backward(&dy.data, &k, classes, g.features),
        })
    }

    fn softmax_nll(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        grad_scale: f32,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        fused_loss(
            "softmax_nll",
            Targets::Levels,
            logits,
            targets,
            |channels, nll, dl| {
                softmax_nll::softmax_nll(&logits.data, &targets.data, channels, grad_scale, nll, dl)
            },
        )
    }

    fn bernoulli_nll(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        grad_scale: f32,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        fused_loss(
            "bernoulli_nll",
            Targets::Binary,
            logits,
            targets,
            |_, nll, dl| {
                bernoulli_nll::bernoulli_nll(&logits.data, &targets.data, grad_scale, nll, dl)
            },
        )
    }

    fn logistic_mixture_nll(
        &self,
        params: &Tensor<Self>,
        targets: &Tensor<Self>,
        mixtures: usize,
        grad_scale: f32,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        const OP: &str = "logistic_mixture_nll";
        let g = MixtureGeom::loss(OP, params, targets, mixtures)?;
        let mut nll = vec![0.0; targets.numel()];
        let mut dparams = vec![0.0; params.numel()];
        let ok = logistic_mixture::logistic_mixture_nll(
            &params.data,
            &targets.data,
            g.channels,
            mixtures,
            grad_scale,
            &mut nll,
            &mut dparams,
        );
        if !ok {
            return Err(Targets::Levels.invalid(OP));
        }
        Ok((
            Tensor {
                shape: targets.shape.clone(),
                data: nll,
            },
            Tensor {
                shape: params.shape.clone(),
                data: dparams,
            },
        ))
    }

    fn logistic_mixture_sample(
        &self,
        params: &Tensor<Self>,
        uniforms: &Tensor<Self>,
        mixtures: usize,
        temperature: f32,
    ) -> Result<Tensor<Self>> {
        const OP: &str = "logistic_mixture_sample";
        let g = MixtureGeom::sample(OP, params, uniforms, mixtures)?;
        MixtureGeom::check_temperature(OP, temperature)?;
        let mut shape = uniforms.shape.clone();
        *shape.last_mut().expect("checked") = g.channels;
        Ok(Tensor {
            shape,
            data: logistic_mixture::logistic_mixture_sample(
                &params.data,
                &uniforms.data,
                g.channels,
                mixtures,
                temperature,
            ),
        })
    }

    fn row_lstm_forward(
        &self,
        is: &Tensor<Self>,
        w_ss: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<LstmState<Self>> {
        lstm_forward("row_lstm_forward", is, w_ss, rec, false, self.precision())
    }

    fn row_lstm_backward(
        &self,
        state: &LstmState<Self>,
        w_ss: &Tensor<Self>,
        dh: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        lstm_backward(
            "row_lstm_backward",
            state,
            w_ss,
            dh,
            rec,
            false,
            self.precision(),
        )
    }

    fn diag_lstm_forward(
        &self,
        is: &Tensor<Self>,
        w_ss: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<LstmState<Self>> {
        lstm_forward("diag_lstm_forward", is, w_ss, rec, true, self.precision())
    }

    fn diag_lstm_backward(
        &self,
        state: &LstmState<Self>,
        w_ss: &Tensor<Self>,
        dh: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        lstm_backward(
            "diag_lstm_backward",
            state,
            w_ss,
            dh,
            rec,
            true,
            self.precision(),
        )
    }

    fn skew(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        let g = SkewGeom::skew("skew", x)?;
        Ok(Tensor {
            shape: g.skewed_shape().to_vec(),
            data: skew::skew(&x.data, g.n, g.h, g.w, g.c),
        })
    }

    fn unskew(&self, s: &Tensor<Self>) -> Result<Tensor<Self>> {
        let g = SkewGeom::unskew("unskew", s)?;
        Ok(Tensor {
            shape: g.image_shape().to_vec(),
            data: skew::unskew(&s.data, g.n, g.h, g.w, g.c),
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
        let g = PositionGeom::read("read_position", x, i, j)?;
        Ok(Tensor {
            shape: g.values_shape().to_vec(),
            data: position::read_position(&x.data, g.n, g.h, g.w, g.f, i, j),
        })
    }

    fn write_position(
        &self,
        x: &mut Tensor<Self>,
        i: usize,
        j: usize,
        v: &Tensor<Self>,
    ) -> Result<()> {
        let g = PositionGeom::write("write_position", x, i, j, v)?;
        position::write_position(&mut x.data, g.n, g.h, g.w, g.f, i, j, &v.data);
        Ok(())
    }

    fn masked_conv2d_pack(&self, w: &Tensor<Self>, spec: &ConvSpec) -> Result<Tensor<Self>> {
        let g = PackGeom::new("masked_conv2d_pack", w, spec)?;
        Ok(Tensor {
            shape: g.packed_shape().to_vec(),
            data: masked_conv2d_at::pack(&w.data, g.cin, g.cout, spec),
        })
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
        let g = ConvGeom::forward_at("masked_conv2d_forward_at", x, packed, b, spec, i, j)?;
        Ok(Tensor {
            shape: vec![g.n, g.cout],
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
        lstm_forward_at(
            "row_lstm_forward_at",
            is,
            w_ss,
            h,
            c,
            false,
            i,
            j,
            self.precision(),
        )
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
        lstm_forward_at(
            "diag_lstm_forward_at",
            is,
            w_ss,
            h,
            c,
            true,
            i,
            j,
            self.precision(),
        )
    }

    fn rmsprop_update(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        ms: &mut Tensor<Self>,
        step: RmsPropStep,
    ) -> Result<()> {
        same_shapes("rmsprop_update", param, &[grad, ms])?;
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
        same_shapes("adam_update", param, &[grad, m, v])?;
        optim::adam_update(&mut param.data, &grad.data, &mut m.data, &mut v.data, step);
        Ok(())
    }

    fn sample_logits(
        &self,
        logits: &Tensor<Self>,
        uniforms: &Tensor<Self>,
        binary: bool,
    ) -> Result<Tensor<Self>> {
        let channels = HeadGeom::sample("sample_logits", logits, uniforms, binary)?.channels;
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
