//! Class labels of a class-conditional model (`--condition class`): the `[n]` labels tensor
//! its forward takes, from the images' labels or from explicit classes, each checked against
//! the model's K.

use super::Model;
use crate::backend::Backend;
use crate::data::Images;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

impl<B: Backend> Model<B> {
    /// The classes of images `indices` as the `[n]` labels tensor of a class-conditional
    /// model's forward; `None` for an unconditional model. Unlabelled images, or a label the
    /// model has no class for, are a clear error.
    pub fn labels(
        &self,
        backend: &B,
        images: &Images,
        indices: &[usize],
    ) -> Result<Option<Tensor<B>>> {
        if self.config.classes.is_none() {
            return Ok(None);
        }
        let Some(all) = images.labels.as_ref() else {
            return Err(Error::Config(
                "the model is class-conditional but the images have no class labels".into(),
            ));
        };
        let classes: Vec<usize> = indices.iter().map(|&i| all[i] as usize).collect();
        self.class_tensor(backend, &classes).map(Some)
    }

    /// The labels tensor `[n]` of classes `classes` (each checked against the model's K).
    pub fn class_tensor(&self, backend: &B, classes: &[usize]) -> Result<Tensor<B>> {
        let k = self.config.classes.ok_or_else(|| {
            Error::Config("the model is not class-conditional: it takes no classes".into())
        })?;
        if let Some(&bad) = classes.iter().find(|&&c| c >= k) {
            return Err(Error::Config(format!(
                "class {bad} is out of range: the model has {k} classes (0..{})",
                k - 1
            )));
        }
        let v: Vec<f32> = classes.iter().map(|&c| c as f32).collect();
        Tensor::from_slice(backend, &[classes.len()], &v)
    }
}
