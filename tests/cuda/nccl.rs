//! NCCL, the multi-GPU collective (needs a CUDA device and libnccl; ignored otherwise, and not
//! emulated: NCCL is a library, not a kernel of ours).
//!
//! - a single-rank communicator: all-reduce and broadcast leave the data as it is, the metrics
//!   all-reduce too (and the tensors are not corrupted by the in-place calls);
//! - `train_ranks` with one GPU and NCCL gives the same run as the plain `train` on that GPU
//!   (`--gpus 1` against the plain path).

use pixelrnn::backend::cuda::{CudaBackend, Device, NcclCollective};
use pixelrnn::backend::Backend;
use pixelrnn::collective::Collective;
use pixelrnn::data::{Dataset, Images};
use pixelrnn::models::{ModelConfig, ModelKind};
use pixelrnn::tensor::Tensor;
use pixelrnn::train::{train, train_ranks, TrainConfig};

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
            },
            data: "random".into(),
            binarize: false,
            optim: Default::default(),
            batch: 4,
            steps: 3,
            eval_every: 3,
            eval_images: Some(4),
            seed: 1,
            recurrence: Default::default(),
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
}
