//! NCCL, the multi-GPU collective (needs a CUDA device and libnccl; ignored otherwise, and not
//! emulated: NCCL is a library, not a kernel of ours).
//!
//! - a single-rank communicator: all-reduce and broadcast leave the data as it is, the metrics
//!   all-reduce too (and the tensors are not corrupted by the in-place calls);
//! - `train_ranks` with one GPU and NCCL gives the same run as the plain `train` on that GPU
//!   (`--gpus 1` against the plain path);
//! - the overlapped gradient all-reduce (`GradSync`: NCCL on its own stream, started after each
//!   layer's backward) over one rank leaves a training step's gradients as they are.

use pixelrnn::backend::cuda::{CudaBackend, Device};
use pixelrnn::backend::Backend;
use pixelrnn::collective::{Collective, NcclCollective};
use pixelrnn::data::{Dataset, Images};
use pixelrnn::models::{Model, ModelConfig, ModelKind, Stages};
use pixelrnn::tensor::Tensor;
use pixelrnn::train::{train, train_ranks, GradSync, TrainConfig};

use crate::random;

/// Under `device`, like the `::device` half of the parity tests (scripts/gpu-check.sh runs
/// `--include-ignored ::device`).
mod device {
    use super::*;

    fn gpu() -> CudaBackend<Device> {
        let exec = Device::new(0)
            .unwrap_or_else(|e| panic!("{e} (this test needs a GPU; run it on a device machine)"));
        CudaBackend::new(exec)
    }

    #[test]
    #[ignore = "needs a CUDA device"]
    fn single_rank_all_reduce_and_broadcast_are_identities() {
        let be = gpu();
        let group = NcclCollective::for_devices(std::slice::from_ref(&be))
            .unwrap_or_else(|e| panic!("NCCL: {e}"));
        let c = &group[0];
        assert_eq!(
            (Collective::<CudaBackend<Device>>::rank(c), c.world_size()),
            (0, 1)
        );
        let data = random(3, 4099, 5.0);
        let mut t = Tensor::from_slice(&be, &[4099], &data).unwrap();
        let shared = t.clone();
        c.all_reduce_sum(&be, &mut t).unwrap();
        assert_eq!(t.to_vec(&be).unwrap(), data, "all-reduce over one rank");
        c.broadcast(&be, &mut t, 0).unwrap();
        assert_eq!(t.to_vec(&be).unwrap(), data, "broadcast from rank 0");
        assert_eq!(
            shared.to_vec(&be).unwrap(),
            data,
            "a clone is not written through"
        );
        let mut metrics = [1.5, -2.0];
        c.all_reduce_f64(&mut metrics).unwrap();
        assert_eq!(metrics, [1.5, -2.0]);
    }

    #[test]
    #[ignore = "needs a CUDA device"]
    fn one_gpu_with_nccl_trains_like_the_plain_path() {
        let be = gpu();
        let px: Vec<u8> = random(7, 8 * 6 * 6, 1.0)
            .into_iter()
            .map(|v| (v.abs() * 255.0) as u8)
            .collect();
        let imgs = Images::new(8, 6, 6, 1, false, px).unwrap();
        let data = Dataset::new("random", imgs.clone(), imgs).unwrap();
        let cfg = TrainConfig {
            model: ModelConfig {
                kind: ModelKind::RowLstm,
                height: 6,
                width: 6,
                channels: 1,
                binary: false,
                layers: 2,
                hidden: 8,
                head: 16,
                row_kernel: 3,
                multiscale: None,
                likelihood: pixelrnn::models::Likelihood::Softmax,
                classes: None,
            },
            data: "random".into(),
            binarize: pixelrnn::data::Binarize::Auto,
            optim: Default::default(),
            batch: 4,
            steps: 3,
            eval_every: 3,
            eval_images: Some(4),
            seed: 1,
            recurrence: Default::default(),
            precision: Default::default(),
            stage: None,
        };
        let plain = tempfile::tempdir().unwrap();
        let a = train(&be, &cfg, &data, plain.path(), None, &mut |_| {}).unwrap();
        let ranked = tempfile::tempdir().unwrap();
        let group = NcclCollective::for_devices(std::slice::from_ref(&be)).unwrap();
        let refs: Vec<&dyn Collective<CudaBackend<Device>>> =
            group.iter().map(|c| c as _).collect();
        let b = train_ranks(
            std::slice::from_ref(&be),
            &refs,
            &cfg,
            &data,
            ranked.path(),
            None,
            &mut |_| {},
        )
        .unwrap();
        let rel = ((a.test_nll_nats - b.test_nll_nats) / a.test_nll_nats).abs();
        assert!(
            rel < 1e-6,
            "plain {} vs NCCL {}",
            a.test_nll_nats,
            b.test_nll_nats
        );
        be.synchronize().unwrap();
    }

    #[test]
    #[ignore = "needs a CUDA device"]
    fn overlapped_gradient_all_reduce_over_one_rank_keeps_the_gradients() {
        let be = gpu();
        let px: Vec<u8> = random(9, 4 * 6 * 6, 1.0)
            .into_iter()
            .map(|v| (v.abs() * 255.0) as u8)
            .collect();
        let imgs = Images::new(4, 6, 6, 1, false, px).unwrap();
        let cfg = ModelConfig::plain(ModelKind::RowLstm, (6, 6, 1), false, (2, 8, 16));
        let grads = |m: &mut Model<CudaBackend<Device>>| -> Vec<Vec<f32>> {
            m.params_mut()
                .into_iter()
                .map(|p| p.grad.to_vec(&be).unwrap())
                .collect()
        };
        let mut plain = Model::new(&be, cfg.clone(), 3).unwrap();
        plain
            .train_batch(&be, &imgs, &[0, 1, 2, 3], 0.01, Stages::Both)
            .unwrap();
        let mut m = Model::new(&be, cfg, 3).unwrap();
        let group = NcclCollective::for_devices(std::slice::from_ref(&be)).unwrap();
        let mut sync = GradSync::new(&be, &group[0]);
        m.train_batch_with(&be, &imgs, &[0, 1, 2, 3], 0.01, Stages::Both, &mut |ps| {
            sync.submit(ps)
        })
        .unwrap();
        assert!(sync.buckets() >= 3, "{} buckets", sync.buckets());
        sync.finish(m.params_mut()).unwrap();
        assert_eq!(grads(&mut m), grads(&mut plain));
        be.synchronize().unwrap();
    }
}
