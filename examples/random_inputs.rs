//! The original's published snippet: the model built with its arguments, run on a random batch
//! of 16 bags of 50 tiles (768 features) and 16 expression vectors of 100 genes.
//!
//! `cargo run --release --example random_inputs` (flex); add `--features ndarray` or
//! `--features wgpu` to run there.

use burn::tensor::{Device, Distribution, Tensor};
use med_crossvit::{MedCrossViTConfig, ModelInput};

fn device() -> Device {
    #[cfg(feature = "wgpu")]
    return Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    #[cfg(all(feature = "ndarray", not(feature = "wgpu")))]
    #[allow(deprecated)]
    return Device::ndarray();
    #[cfg(not(any(feature = "ndarray", feature = "wgpu")))]
    Device::flex()
}

fn main() -> Result<(), med_crossvit::Error> {
    med_crossvit::runtime::keep_freed_memory();
    let device = device();
    let config = MedCrossViTConfig::seed();
    let model = config.init(&device)?;
    println!(
        "device: {device:?}; parameters: {}",
        burn::module::Module::num_params(&model)
    );

    let wsi_bag = Tensor::<3>::random([16, 50, 768], Distribution::Default, &device);
    let rna_seq = Tensor::<2>::random([16, 100], Distribution::Default, &device);
    let start = std::time::Instant::now();
    let out = model.forward(ModelInput::new(wsi_bag, rna_seq).with_attention())?;
    let pred = out.logits;
    println!("{pred}");
    println!("forward: {:.0} ms", start.elapsed().as_secs_f64() * 1e3);
    println!("predictions: {:?}", pred.dims());
    println!("WSI embedding (pooled): {:?}", out.wsi_embedding.dims());
    println!("RNA embedding (pooled): {:?}", out.rna_embedding.dims());
    if let Some(attention) = out.attention {
        println!(
            "tile attention [batch, layers, heads, 1 + tiles]: {:?}",
            attention.rna_cls_over_tiles.dims()
        );
        println!(
            "tile scores [batch, tiles]: {:?}",
            attention.tile_scores().dims()
        );
    }
    Ok(())
}
