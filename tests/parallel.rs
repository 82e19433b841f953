//! Training spread over several devices of one process: the gradients of a batch shared out
//! over two flex devices are the batch's own, and a short run on two devices ends with the
//! single-device run's metrics.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};
use med_crossvit::ModelInput;
use med_crossvit::eval::Metrics;
use med_crossvit::train::Alone;
use med_crossvit::train::parallel::{Parallel, ProcessGroup, flatten, shares};

mod common;
use common::{bin, text};

/// A loss that is a mean over the batch, as the training losses are: here of the squared
/// logits.
fn mean_loss(model: &med_crossvit::MedCrossViT, tiles: Tensor<3>, genes: Tensor<2>) -> Tensor<1> {
    let logits = model.forward(ModelInput::new(tiles, genes)).unwrap().logits;
    let [b, c] = logits.dims();
    (logits.clone() * logits).sum().reshape([1]) / (b * c) as f32
}

#[test]
fn a_batch_shared_over_two_devices_has_the_batchs_gradient() {
    let device = Device::flex().autodiff();
    device.seed(7);
    let mut config = common::tiny_model(3, 5);
    config.dropout = 0.0;
    config.emb_dropout = 0.0;
    let model = config.init(&device).unwrap();
    let tiles = Tensor::<3>::random([5, 6, 8], Distribution::Normal(0.0, 1.0), &device);
    let genes = Tensor::<2>::random([5, 5], Distribution::Normal(0.0, 1.0), &device);

    let whole = GradientsParams::from_grads(
        mean_loss(&model, tiles.clone(), genes.clone()).backward(),
        &model,
    );
    // Shares of 3 and 2 samples, each loss weighted by its part of the batch; the second on
    // a forked replica.
    let parallel = Parallel {
        devices: vec![Device::flex(), Device::flex()],
        group: &Alone,
        nccl: false,
    };
    let mut parts = Vec::new();
    for (d, range) in shares(5, 2).into_iter().enumerate() {
        let replica = if d == 0 {
            model.clone()
        } else {
            model.clone().fork(&device)
        };
        let part = range.len() as f32 / 5.0;
        let loss = mean_loss(
            &replica,
            tiles.clone().narrow(0, range.start, range.len()),
            genes.clone().narrow(0, range.start, range.len()),
        ) * part;
        parts.push(GradientsParams::from_grads(loss.backward(), &replica));
    }
    let summed = parallel.reducer().reduce(parts, &model).unwrap();
    let (a, layout_a) = flatten(&whole, &model);
    let (b, _) = flatten(&summed, &model);
    assert_eq!(a.len(), b.len(), "{layout_a:?}");
    let largest = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(largest > 1e-4, "the gradient is not trivially zero");
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-5, "largest difference {worst}");
    assert_eq!(Alone.size(), 1);
}

fn history(run: &std::path::Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect()
}

fn close_runs(a: &std::path::Path, b: &std::path::Path) {
    let (ha, hb) = (history(a), history(b));
    assert_eq!(ha.len(), hb.len());
    for (ra, rb) in ha.iter().zip(&hb) {
        for (x, y) in ra.iter().zip(rb) {
            assert!(
                (x - y).abs() < 1e-4 || (x.is_nan() && y.is_nan()),
                "{ra:?} vs {rb:?}"
            );
        }
    }
    let metrics = |run: &std::path::Path| -> Metrics {
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap()
    };
    let (ma, mb) = (metrics(a), metrics(b));
    for ((name, x), (_, y)) in ma.scalars().into_iter().zip(mb.scalars()) {
        let (x, y) = (x.unwrap(), y.unwrap());
        assert!((x - y).abs() < 1e-4, "{name}: {x} vs {y}");
    }
}

#[test]
fn two_devices_train_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = common::TinyRun::new(dir.path());
    for (out, extra) in [
        ("one", vec![]),
        ("two", vec!["--devices", "2"]),
        // Gradient accumulation and recomputation take the same shared-out step.
        (
            "two-recomputed",
            vec!["--devices", "2", "--gradient-checkpointing"],
        ),
        ("one-accumulated", vec!["--grad-accumulation", "2"]),
        (
            "two-accumulated",
            vec!["--devices", "2", "--grad-accumulation", "2"],
        ),
    ] {
        let args = tiny.args(out, &tiny.features, &extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = bin(&args);
        let (_, stderr) = text(&o);
        assert!(o.status.success(), "{out}: {stderr}");
    }
    let run = |name: &str| dir.path().join(name);
    close_runs(&run("one"), &run("two"));
    close_runs(&run("one"), &run("two-recomputed"));
    close_runs(&run("one-accumulated"), &run("two-accumulated"));
    // No device: refused by name.
    let args = tiny.args("none", &tiny.features, &["--devices", "0"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = bin(&args);
    let (_, stderr) = text(&o);
    assert!(
        !o.status.success() && stderr.contains("device count"),
        "{stderr}"
    );
}
