//! Model behaviour on tiny configurations: shapes, padding, attention, gradients, dropout,
//! persistence and errors.

use crate::support;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Bool, Device, Tensor, TensorData, Tolerance};
use med_crossvit::{
    ConfigError, InputError, LoadError, MedCrossViT, MedCrossViTConfig, ModelInput, PersistError,
    Pool,
};

fn tiny(wsi_dim: usize, rna_dim: usize) -> MedCrossViTConfig {
    MedCrossViTConfig {
        num_classes: 3,
        depth: 2,
        wsi_dim,
        rna_dim,
        wsi_num_tiles: 12,
        wsi_enc_depth: 1,
        wsi_enc_heads: 2,
        wsi_enc_mlp_dim: 16,
        wsi_enc_dim_head: 4,
        rna_num_genes: 6,
        rna_enc_depth: 1,
        rna_enc_heads: 2,
        rna_enc_mlp_dim: 16,
        rna_enc_dim_head: 4,
        cross_attn_depth: 2,
        cross_attn_heads: 3,
        cross_attn_dim_head: 4,
        ..MedCrossViTConfig::new(3, wsi_dim, rna_dim)
    }
}

/// Deterministic pseudo-random values in [-1, 1), independent of the device's shared random
/// generator (which parallel tests draw from too).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1 << 23) as f32 - 1.0
        })
        .collect()
}

fn inputs(batch: usize, tiles: usize, c: &MedCrossViTConfig, device: &Device) -> ModelInput {
    let t = [batch, tiles, c.wsi_dim];
    let e = [batch, c.rna_num_genes];
    ModelInput::new(
        Tensor::from_data(TensorData::new(values(t.iter().product(), 1), t), device),
        Tensor::from_data(TensorData::new(values(e.iter().product(), 2), e), device),
    )
}

fn mask(rows: &[&[bool]], device: &Device) -> Tensor<2, Bool> {
    let width = rows[0].len();
    let flat: Vec<bool> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), width]), device)
}

fn assert_close<const D: usize>(a: Tensor<D>, b: Tensor<D>, tol: f32) {
    a.into_data()
        .assert_approx_eq::<f32>(&b.into_data(), Tolerance::absolute(tol));
}

#[test]
fn output_shapes_for_both_pools() {
    let _serial = support::serial();
    let device = Device::flex();
    for pool in [Pool::Mean, Pool::Cls] {
        let config = MedCrossViTConfig { pool, ..tiny(8, 8) };
        let model = config.init(&device).unwrap();
        let out = model
            .forward(inputs(4, 10, &config, &device).with_attention())
            .unwrap();
        assert_eq!(out.logits.dims(), [4, 3]);
        assert_eq!(out.wsi_logits.dims(), [4, 3]);
        assert_eq!(out.rna_logits.dims(), [4, 3]);
        assert_eq!(out.wsi_embedding.dims(), [4, 8]);
        assert_eq!(out.rna_embedding.dims(), [4, 8]);
        let att = out.attention.unwrap();
        // depth 2 × cross_attn_depth 2 layers, 3 heads, CLS + 10 tiles / CLS + 6 genes.
        assert_eq!(att.rna_cls_over_tiles.dims(), [4, 4, 3, 11]);
        assert_eq!(att.wsi_cls_over_genes.dims(), [4, 4, 3, 7]);
    }
}

fn param1(values: &[f32], device: &Device) -> Param<Tensor<1>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(values.to_vec(), [values.len()]),
        device,
    ))
}

/// `[rows, cols]` row-major values of a 2-D tensor as `f64` rows.
fn rows(t: Tensor<2>) -> Vec<Vec<f64>> {
    let [_, c] = t.dims();
    let v: Vec<f32> = t.into_data().convert::<f32>().try_to_vec().unwrap();
    v.chunks(c)
        .map(|r| r.iter().map(|&x| x as f64).collect())
        .collect()
}

fn vec1(t: Tensor<1>) -> Vec<f64> {
    let v: Vec<f32> = t.into_data().convert::<f32>().try_to_vec().unwrap();
    v.into_iter().map(f64::from).collect()
}

#[test]
fn logits_are_the_two_heads_contributions_summed() {
    let _serial = support::serial();
    let device = Device::flex();
    let config = tiny(8, 6);
    let mut model = config.init(&device).unwrap();
    let input = || inputs(2, 5, &config, &device);

    // The heads' own arithmetic, in f64 on the pooled tokens with the model's random weights:
    // LayerNorm (ε = 1e-5, biased variance) then x·W + b, the two heads added.
    let out = model.forward(input()).unwrap();
    let head = |emb: Tensor<2>, h: &med_crossvit::model::ClassifierHead| {
        let gamma = vec1(h.norm.gamma.val());
        let beta = vec1(h.norm.beta.as_ref().unwrap().val());
        let w = rows(h.linear.weight.val());
        let b = vec1(h.linear.bias.as_ref().unwrap().val());
        rows(emb)
            .into_iter()
            .map(|x| {
                let n = x.len() as f64;
                let mean = x.iter().sum::<f64>() / n;
                let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                let y: Vec<f64> = x
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v - mean) / (var + 1e-5).sqrt() * gamma[i] + beta[i])
                    .collect();
                (0..b.len())
                    .map(|c| b[c] + y.iter().zip(&w).map(|(yi, wi)| yi * wi[c]).sum::<f64>())
                    .collect::<Vec<f64>>()
            })
            .collect::<Vec<_>>()
    };
    let wsi = head(out.wsi_embedding.clone(), &model.wsi_head);
    let rna = head(out.rna_embedding.clone(), &model.rna_head);
    let logits = rows(out.logits);
    for bag in 0..2 {
        for c in 0..3 {
            let expected = wsi[bag][c] + rna[bag][c];
            assert!(
                (logits[bag][c] - expected).abs() < 1e-4,
                "bag {bag} class {c}: {} vs {expected}",
                logits[bag][c]
            );
        }
    }

    // Heads set by hand: with γ = 0 the LayerNorm outputs β whatever the input, so each head
    // gives β·W + b. WSI: β = e₀, W row 0 = [1, −2, 0.5], b = [0.25, 0, 0] → [1.25, −2, 0.5].
    // RNA: β = 2·e₁, W row 1 = [3, 1, −1], b = [0, 0, 1] → [6, 2, −1]. Fused: [7.25, 0, −0.5].
    // The other rows of W are large, so reading the wrong row of either head shows.
    let set = |h: &mut med_crossvit::model::ClassifierHead,
               beta: &[f32],
               row: usize,
               w: [f32; 3],
               b: [f32; 3]| {
        let dim = beta.len();
        h.norm.gamma = param1(&vec![0.0; dim], &device);
        h.norm.beta = Some(param1(beta, &device));
        let mut weight = vec![50.0f32; dim * 3];
        weight[row * 3..row * 3 + 3].copy_from_slice(&w);
        h.linear.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(weight, [dim, 3]),
            &device,
        ));
        h.linear.bias = Some(param1(&b, &device));
    };
    set(
        &mut model.wsi_head,
        &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        0,
        [1.0, -2.0, 0.5],
        [0.25, 0.0, 0.0],
    );
    set(
        &mut model.rna_head,
        &[0.0, 2.0, 0.0, 0.0, 0.0, 0.0],
        1,
        [3.0, 1.0, -1.0],
        [0.0, 0.0, 1.0],
    );
    let out = model.forward(input()).unwrap();
    let expect = |t: Tensor<2>, row: [f32; 3]| {
        let want = Tensor::<2>::from_data(TensorData::new([row, row].concat(), [2, 3]), &device);
        assert_close(t, want, 1e-5);
    };
    expect(out.wsi_logits, [1.25, -2.0, 0.5]);
    expect(out.rna_logits, [6.0, 2.0, -1.0]);
    expect(out.logits, [7.25, 0.0, -0.5]);
}

#[test]
fn different_modality_widths_use_projections() {
    let _serial = support::serial();
    let device = Device::flex();
    let config = tiny(10, 6);
    let model = config.init(&device).unwrap();
    let layer = &model.encoder.blocks[0].cross.layers[0];
    assert!(layer.wsi_attend_rna.project_in.is_some());
    assert!(layer.rna_attend_wsi.project_out.is_some());
    let out = model.forward(inputs(2, 5, &config, &device)).unwrap();
    assert_eq!(out.wsi_embedding.dims(), [2, 10]);
    assert_eq!(out.rna_embedding.dims(), [2, 6]);
    assert_eq!(out.logits.dims(), [2, 3]);

    let same = tiny(8, 8).init(&device).unwrap();
    assert!(
        same.encoder.blocks[0].cross.layers[0]
            .wsi_attend_rna
            .project_in
            .is_none()
    );
}

#[test]
fn padded_tiles_change_nothing() {
    let _serial = support::serial();
    let device = Device::flex();
    for pool in [Pool::Mean, Pool::Cls] {
        let config = MedCrossViTConfig { pool, ..tiny(8, 6) };
        let model = config.init(&device).unwrap();
        // Bag 0 has 7 real tiles padded to 12 with garbage; bag 1 is full.
        let full = inputs(2, 12, &config, &device);
        let m = mask(
            &[
                &[
                    false, false, false, false, false, false, false, true, true, true, true, true,
                ],
                &[false; 12],
            ],
            &device,
        );
        let padded = model
            .forward(full.clone().mask_pad(m).with_attention())
            .unwrap();
        let alone = ModelInput::new(
            full.tiles.clone().narrow(0, 0, 1).narrow(1, 0, 7),
            full.expression.clone().narrow(0, 0, 1),
        );
        let alone = model.forward(alone.with_attention()).unwrap();
        assert_close(padded.logits.clone().narrow(0, 0, 1), alone.logits, 1e-5);
        assert_close(
            padded.wsi_embedding.clone().narrow(0, 0, 1),
            alone.wsi_embedding,
            1e-5,
        );
        // The full bag is unaffected by the other bag's padding.
        let second = ModelInput::new(full.tiles.narrow(0, 1, 1), full.expression.narrow(0, 1, 1));
        let second = model.forward(second).unwrap();
        assert_close(padded.logits.narrow(0, 1, 1), second.logits, 1e-5);
        // Tile scores of the padded bag match the bag alone, padding scoring 0.
        let scores = padded.attention.unwrap().tile_scores().narrow(0, 0, 1);
        let alone_scores = alone.attention.unwrap().tile_scores();
        assert_close(scores.clone().narrow(1, 0, 7), alone_scores, 1e-5);
        let pad_total: f32 = scores.narrow(1, 7, 5).sum().into_scalar::<f32>();
        assert_eq!(pad_total, 0.0);
    }
}

#[test]
fn attention_rows_sum_to_one_and_padding_gets_zero() {
    let _serial = support::serial();
    let device = Device::flex();
    let config = tiny(8, 8);
    let model = config.init(&device).unwrap();
    let m = mask(
        &[
            &[false, false, false, true, true, true],
            &[false, false, false, false, false, true],
        ],
        &device,
    );
    let out = model
        .forward(inputs(2, 6, &config, &device).mask_pad(m).with_attention())
        .unwrap();
    let att = out.attention.unwrap();
    let ones = |dims: [usize; 3]| Tensor::<3>::ones(dims, &device);
    assert_close(
        att.rna_cls_over_tiles.clone().sum_dim(3).reshape([2, 4, 3]),
        ones([2, 4, 3]),
        1e-5,
    );
    assert_close(
        att.wsi_cls_over_genes.clone().sum_dim(3).reshape([2, 4, 3]),
        ones([2, 4, 3]),
        1e-5,
    );
    // Columns 4..7 of bag 0 (tiles 3..6) and column 6 of bag 1 (tile 5) are padding.
    let pad0 = att
        .rna_cls_over_tiles
        .clone()
        .narrow(0, 0, 1)
        .narrow(3, 4, 3);
    let pad1 = att
        .rna_cls_over_tiles
        .clone()
        .narrow(0, 1, 1)
        .narrow(3, 6, 1);
    assert_eq!(pad0.abs().max().into_scalar::<f32>(), 0.0);
    assert_eq!(pad1.abs().max().into_scalar::<f32>(), 0.0);
    let scores = att.tile_scores();
    assert_close(scores.sum_dim(1), Tensor::<2>::ones([2, 1], &device), 1e-5);
    assert_close(
        att.gene_scores().sum_dim(1),
        Tensor::<2>::ones([2, 1], &device),
        1e-5,
    );
}

/// Collects, for every float parameter, whether its gradient exists and is non-zero.
struct GradCheck<'a> {
    grads: &'a burn::tensor::Gradients,
    path: Vec<String>,
    missing: Vec<String>,
    count: usize,
}

impl ModuleVisitor for GradCheck<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.count += 1;
        let nonzero = param
            .val()
            .grad(self.grads)
            .map(|g| g.abs().sum().into_scalar::<f32>() > 0.0)
            .unwrap_or(false);
        if !nonzero {
            self.missing.push(self.path.join("."));
        }
    }
}

#[test]
fn gradients_reach_every_parameter() {
    let _serial = support::serial();
    let device = Device::flex().autodiff();
    for (wsi_dim, rna_dim) in [(8, 8), (10, 6)] {
        let config = tiny(wsi_dim, rna_dim);
        let model = config.init(&device).unwrap();
        let m = mask(&[&[false, false, false, false, true], &[false; 5]], &device);
        let out = model
            .forward(inputs(2, 5, &config, &device).mask_pad(m))
            .unwrap();
        let grads = (out.logits.clone() * out.logits).sum().backward();
        let mut check = GradCheck {
            grads: &grads,
            path: vec![],
            missing: vec![],
            count: 0,
        };
        model.visit(&mut check);
        assert!(check.count > 50, "visited {} params", check.count);
        assert!(
            check.missing.is_empty(),
            "no gradient for {:?}",
            check.missing
        );
    }
}

#[test]
fn dropout_is_inactive_at_inference() {
    let _serial = support::serial();
    let config = MedCrossViTConfig {
        dropout: 0.5,
        emb_dropout: 0.5,
        ..tiny(8, 8)
    };
    // A plain device never applies dropout.
    let device = Device::flex();
    let model = config.init(&device).unwrap();
    let a = model
        .forward(inputs(2, 6, &config, &device))
        .unwrap()
        .logits;
    let b = model
        .forward(inputs(2, 6, &config, &device))
        .unwrap()
        .logits;
    assert_close(a, b, 0.0);
    // On an autodiff device, training mode applies it and `valid()` turns it off.
    let device = Device::flex().autodiff();
    let model = config.init(&device).unwrap();
    let a = model
        .forward(inputs(2, 6, &config, &device))
        .unwrap()
        .logits;
    let b = model
        .forward(inputs(2, 6, &config, &device))
        .unwrap()
        .logits;
    let diff = (a - b).abs().max().into_scalar::<f32>();
    assert!(diff > 1e-4, "dropout should act in training, diff {diff}");
    let valid = model.valid();
    let a = valid
        .forward(inputs(2, 6, &config, &device))
        .unwrap()
        .logits;
    let b = valid
        .forward(inputs(2, 6, &config, &device))
        .unwrap()
        .logits;
    assert_close(a, b, 0.0);
}

#[test]
fn config_json_round_trips_through_a_file() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.json");
    let config = MedCrossViTConfig {
        pool: Pool::Cls,
        wsi_pos_embedding: false,
        dropout: 0.25,
        ..tiny(10, 6)
    };
    config.save(&path).unwrap();
    assert_eq!(MedCrossViTConfig::load(&path).unwrap(), config);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"pool\": \"cls\""), "{text}");
}

#[test]
fn saved_weights_reload_to_identical_outputs() {
    let _serial = support::serial();
    let device = Device::flex();
    let config = tiny(10, 6);
    let model = config.init(&device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = MedCrossViT::load(dir.path(), &device).unwrap();
    assert_eq!(loaded.config(), &config);
    let a = model.forward(inputs(3, 9, &config, &device)).unwrap();
    let b = loaded.forward(inputs(3, 9, &config, &device)).unwrap();
    assert_close(a.logits, b.logits, 0.0);

    // Weights that do not fit the config beside them are refused, naming the file.
    let other = tempfile::tempdir().unwrap();
    let mut bigger = config.clone();
    bigger.wsi_enc_mlp_dim = 32;
    bigger.save(other.path().join("config.json")).unwrap();
    std::fs::copy(dir.path().join("model.bpk"), other.path().join("model.bpk")).unwrap();
    let err = MedCrossViT::load(other.path(), &device).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Persist(PersistError::Mismatch { .. } | PersistError::Weights { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("model.bpk"), "{err}");

    // A folder without weights.
    let empty = tempfile::tempdir().unwrap();
    config.save(empty.path().join("config.json")).unwrap();
    let err = MedCrossViT::load(empty.path(), &device).unwrap_err();
    assert!(
        matches!(err, LoadError::Persist(PersistError::Io { .. })),
        "{err}"
    );
}

#[test]
fn each_invalid_config_names_its_field() {
    let _serial = support::serial();
    let device = Device::flex();
    type Breaker = fn(&mut MedCrossViTConfig);
    let zero_fields: [(&str, Breaker); 8] = [
        ("num_classes", |c| c.num_classes = 0),
        ("depth", |c| c.depth = 0),
        ("wsi_dim", |c| c.wsi_dim = 0),
        ("rna_num_genes", |c| c.rna_num_genes = 0),
        ("wsi_enc_heads", |c| c.wsi_enc_heads = 0),
        ("rna_enc_dim_head", |c| c.rna_enc_dim_head = 0),
        ("cross_attn_depth", |c| c.cross_attn_depth = 0),
        ("cross_attn_heads", |c| c.cross_attn_heads = 0),
    ];
    for (field, break_it) in zero_fields {
        let mut c = tiny(8, 8);
        break_it(&mut c);
        match c.init(&device) {
            Err(ConfigError::Zero { field: f }) => assert_eq!(f, field),
            other => panic!("{field}: expected Zero, got {other:?}"),
        }
    }
    let mut c = tiny(8, 8);
    c.dropout = 1.0;
    assert!(matches!(
        c.validate(),
        Err(ConfigError::Probability {
            field: "dropout",
            ..
        })
    ));
    let mut c = tiny(8, 8);
    c.emb_dropout = -0.1;
    assert!(matches!(
        c.validate(),
        Err(ConfigError::Probability {
            field: "emb_dropout",
            ..
        })
    ));
    let mut c = tiny(8, 8);
    c.rna_num_genes = 20_000;
    c.rna_dim = 768;
    assert!(matches!(
        c.validate(),
        Err(ConfigError::Inconsistent {
            field: "rna_num_genes",
            ..
        })
    ));
    let err = MedCrossViTConfig::from_json(
        r#"{"num_classes": 2, "wsi_dim": 8, "rna_dim": 8, "pool": "max"}"#,
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Json { .. }), "{err}");
}

#[test]
fn each_wrong_input_shape_says_what_was_expected() {
    let _serial = support::serial();
    let device = Device::flex();
    let config = tiny(8, 6);
    let model = config.init(&device).unwrap();
    let t = |b, n, d| Tensor::<3>::zeros([b, n, d], &device);
    let e = |b, g| Tensor::<2>::zeros([b, g], &device);
    let dimension = |input: ModelInput| match model.forward(input) {
        Err(InputError::Dimension {
            tensor,
            dim,
            expected,
            got,
            ..
        }) => (tensor, dim, expected, got),
        other => panic!(
            "expected a Dimension error, got {:?}",
            other.map(|o| o.logits.dims())
        ),
    };
    assert_eq!(
        dimension(ModelInput::new(t(2, 5, 7), e(2, 6))),
        ("tiles", 2, 8, 7)
    );
    assert_eq!(
        dimension(ModelInput::new(t(2, 5, 8), e(2, 5))),
        ("expression", 1, 6, 5)
    );
    assert_eq!(
        dimension(ModelInput::new(t(2, 5, 8), e(3, 6))),
        ("expression", 0, 2, 3)
    );
    let m = Tensor::<2, Bool>::from_data(TensorData::new(vec![false; 8], [2, 4]), &device);
    assert_eq!(
        dimension(ModelInput::new(t(2, 5, 8), e(2, 6)).mask_pad(m)),
        ("padding mask", 1, 5, 4)
    );
    let m = Tensor::<2, Bool>::from_data(TensorData::new(vec![false; 5], [1, 5]), &device);
    assert_eq!(
        dimension(ModelInput::new(t(2, 5, 8), e(2, 6)).mask_pad(m)),
        ("padding mask", 0, 2, 1)
    );
    assert_eq!(
        model
            .forward(ModelInput::new(t(2, 13, 8), e(2, 6)))
            .unwrap_err(),
        InputError::TooManyTiles { got: 13, max: 12 }
    );
    assert_eq!(
        model
            .forward(ModelInput::new(t(2, 0, 8), e(2, 6)))
            .unwrap_err(),
        InputError::EmptyBag
    );
    let message = model
        .forward(ModelInput::new(t(2, 5, 7), e(2, 6)))
        .unwrap_err()
        .to_string();
    assert!(message.contains("should be 8, got 7"), "{message}");

    // Without the positional embedding, any bag length is fine.
    let free = MedCrossViTConfig {
        wsi_pos_embedding: false,
        ..config
    };
    let model = free.init(&device).unwrap();
    assert_eq!(
        model
            .forward(ModelInput::new(t(1, 40, 8), e(1, 6)))
            .unwrap()
            .logits
            .dims(),
        [1, 3]
    );
}

/// The tiny configuration of the cost test ([`support::tiny_model`]: one block, tiles of
/// width 8, gene tokens of width 6, 2 heads of 4 and MLPs of 16 everywhere), 5 genes.
fn cost_config(tokenizer: med_crossvit::model::RnaTokenizer) -> MedCrossViTConfig {
    MedCrossViTConfig {
        rna_tokenizer: tokenizer,
        ..support::tiny_model(2, 5)
    }
}

#[test]
fn training_cost_matches_hand_computed_sizes_and_warns_for_thousands_of_gene_tokens() {
    let _serial = support::serial();
    use med_crossvit::model::RnaTokenizer;
    use med_crossvit::model::cost::{CostInputs, parameter_count, training_cost};
    let c = cost_config(RnaTokenizer::Dense);
    // WSI layer (d 8, inner 8, MLP 16): norm 16 + q 64 + kv 128 + out 72, then norm 16 +
    // 144 + 136 = 576, with the final norm 592. RNA layer (d 6): 12 + 48 + 96 + 54 + 12 +
    // 112 + 102 = 436, 448. Cross layer: attention at 6 (210) and at 8 (280), projections
    // 2 · (54 + 56). Dense tokenizer 10 + 180 + 12, CLS 6, positions 36; tiles: CLS 8,
    // positions 56; heads 16 + 18 and 12 + 14.
    let hand = 592 + 448 + (210 + 280 + 220) + (202 + 6 + 36) + (8 + 56) + (34 + 26);
    assert_eq!(hand, 2118);
    assert_eq!(parameter_count(&c), hand);
    let model = c.init(&Device::flex()).unwrap();
    assert_eq!(model.num_params() as u64, hand);
    let per_gene = cost_config(RnaTokenizer::PerGene);
    assert_eq!(
        parameter_count(&per_gene),
        per_gene.init(&Device::flex()).unwrap().num_params() as u64
    );

    let inputs = CostInputs {
        batch: 2,
        bag_size: 4,
        train_bags: 10,
        val_bags: 3,
        gradient_checkpointing: false,
    };
    let cost = training_cost(&c, &inputs);
    // Per sample: the WSI layer over 5 tokens keeps 5 · (4·8 + 4·8 + 2·16) = 480 values and
    // 2 · 5² attention weights; the RNA layer over 6 tokens 6 · (24 + 32 + 32) = 528 and
    // 2 · 6² = 72. Batch 2, 4 bytes each.
    assert_eq!(cost.activation_bytes, 4 * 2 * (480 + 50 + 528 + 72));
    assert_eq!(cost.gene_attention_bytes, 4 * 2 * 72);
    assert_eq!(cost.weight_bytes, 16 * 2118);
    assert_eq!(cost.peak_bytes, 16 * 2118 + 9040);
    // Three forward passes per training bag, one per validation bag.
    let forward = med_crossvit::bench::forward_flops(&c, 1, 4);
    assert_eq!(cost.flops_per_epoch, forward * 33.0);
    assert!((cost.seconds_per_epoch(1.0) - forward * 33.0 / 1e9).abs() < 1e-12);
    assert_eq!(cost.warning(Some(1), 1e-9), None, "5 genes never warn");

    // per_gene over 3,000 genes at the small preset's widths, batch 16: the gene-token
    // attention alone is 4 heads · 3001² weights in each of 2 layers per sample.
    let big = MedCrossViTConfig {
        rna_num_genes: 3000,
        rna_tokenizer: RnaTokenizer::PerGene,
        ..MedCrossViTConfig::small(2, 1024, 64)
    };
    let inputs = CostInputs {
        batch: 16,
        bag_size: 50,
        train_bags: 300,
        val_bags: 60,
        gradient_checkpointing: false,
    };
    let cost = training_cost(&big, &inputs);
    assert_eq!(cost.gene_attention_bytes, 4 * 16 * 2 * 4 * 3001 * 3001);
    let warning = cost.warning(Some(2_000_000_000), 1e6).unwrap();
    assert!(
        warning.contains("per_gene tokenizer attends over 3000 gene tokens")
            && warning.contains("more than the 2.00 GB")
            && warning.contains("--tokenizer pathways")
            && warning.contains("--top-genes"),
        "{warning}"
    );
    assert!(
        cost.warning(None, 1.0)
            .unwrap()
            .contains("min or more per epoch")
    );
    assert_eq!(cost.warning(Some(u64::MAX), 1e6), None, "fits and is fast");
    assert!(cost.describe(80.0).contains("RNA tokens"));
}

/// Nyström attention in the estimate: per_gene over 3,000 genes at the small preset's widths,
/// 256 landmarks (segments of ⌈3001 / 256⌉ = 12 tokens, so 251 of them), 6 iterations.
#[test]
fn training_cost_counts_nystrom_attention_by_hand() {
    use med_crossvit::model::cost::{CostInputs, attention_core_flops, training_cost};
    use med_crossvit::model::{AttentionKind, RnaTokenizer};
    let exact = MedCrossViTConfig {
        rna_num_genes: 3000,
        rna_tokenizer: RnaTokenizer::PerGene,
        ..MedCrossViTConfig::small(2, 1024, 64)
    };
    let nystrom = MedCrossViTConfig {
        rna_attention: AttentionKind::nystrom(256),
        ..exact.clone()
    };
    let inputs = CostInputs {
        batch: 16,
        bag_size: 50,
        train_bags: 300,
        val_bags: 60,
        gradient_checkpointing: false,
    };
    // Per head: 2 · 3001 · 251 = 1,506,502 weights of the two n × m attentions and
    // (5 · 6 + 2) · 251² = 2,016,032 landmark values; 4 heads, 2 RNA layers, 16 samples,
    // 4 bytes.
    let cost = training_cost(&nystrom, &inputs);
    assert_eq!(cost.gene_attention_bytes, 1_803_537_408);
    assert_eq!(
        cost.gene_attention_bytes,
        4 * 16 * 2 * 4 * (1_506_502 + 2_016_032)
    );
    let exact_cost = training_cost(&exact, &inputs);
    assert_eq!(
        exact_cost.gene_attention_bytes,
        4 * 16 * 2 * 4 * 3001 * 3001
    );
    assert_eq!(
        exact_cost.activation_bytes - cost.activation_bytes,
        exact_cost.gene_attention_bytes - cost.gene_attention_bytes
    );
    // Products of one core: 8·4·3001·251·32 + 4·4·251²·32 + 8·6·4·251³ against 4·4·3001²·32.
    let core = attention_core_flops(nystrom.rna_attention, 3001, 4, 32);
    assert_eq!(core, (771_329_024u64 + 32_256_512 + 3_036_144_192) as f64);
    assert_eq!(
        attention_core_flops(AttentionKind::Exact, 3001, 4, 32),
        4_611_072_512.0
    );
    // The forward pass differs by that, in each of the 2 RNA layers.
    let difference = med_crossvit::bench::forward_flops(&exact, 1, 50)
        - med_crossvit::bench::forward_flops(&nystrom, 1, 50);
    assert_eq!(difference, 2.0 * (4_611_072_512.0 - 3_839_729_728.0));
    // As many landmarks as tokens or more: exact.
    let all = MedCrossViTConfig {
        rna_attention: AttentionKind::nystrom(3001),
        ..exact.clone()
    };
    assert_eq!(training_cost(&all, &inputs), exact_cost);
}

/// Deterministic 8-wide features of six distinct tiles, and one expression vector of 5 genes.
fn six_tiles_and_expression(device: &Device) -> (Vec<f32>, Tensor<2>) {
    let tiles: Vec<f32> = (0..6 * 8)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
        .collect();
    let expression = Tensor::<2>::from_data(
        TensorData::new(vec![0.3f32, -1.2, 0.7, 2.0, -0.4], [1, 5]),
        device,
    );
    (tiles, expression)
}

/// The logits and tile scores of `model` on one bag of the 8-wide `tiles` taken in `order`.
fn logits_and_scores(
    model: &MedCrossViT,
    tiles: &[f32],
    expression: &Tensor<2>,
    order: &[usize],
) -> (Vec<f32>, Vec<f32>) {
    let data: Vec<f32> = order
        .iter()
        .flat_map(|&k| tiles[k * 8..(k + 1) * 8].iter().copied())
        .collect();
    let bag = Tensor::<3>::from_data(
        TensorData::new(data, [1, order.len(), 8]),
        &expression.device(),
    );
    let out = model
        .forward(ModelInput::new(bag, expression.clone()).with_attention())
        .unwrap();
    let scores = out
        .attention
        .unwrap()
        .tile_scores()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    (out.logits.into_data().try_to_vec::<f32>().unwrap(), scores)
}

/// Asserts that `model` gives the bag of six `tiles` the same logits (within 1e-5) in the
/// identity order and a permuted one, and moves each tile's score with the tile (within
/// 1e-6); and that the scores differ, so that the check could fail.
fn assert_permutation_invariant(model: &MedCrossViT, tiles: &[f32], expression: &Tensor<2>) {
    let identity = [0, 1, 2, 3, 4, 5];
    let permuted = [4, 0, 5, 2, 1, 3];
    let (logits, scores) = logits_and_scores(model, tiles, expression, &identity);
    let (logits_p, scores_p) = logits_and_scores(model, tiles, expression, &permuted);
    assert_eq!(logits.len(), model.config().num_classes);
    assert_eq!((scores.len(), scores_p.len()), (6, 6));
    for (a, b) in logits.iter().zip(&logits_p) {
        assert!((a - b).abs() < 1e-5, "logits {logits:?} vs {logits_p:?}");
    }
    for (slot, &tile) in permuted.iter().enumerate() {
        assert!(
            (scores_p[slot] - scores[tile]).abs() < 1e-6,
            "slot {slot} holds tile {tile}: {scores_p:?} vs {scores:?}"
        );
    }
    assert!(
        scores.iter().any(|&s| (s - scores[0]).abs() > 1e-4),
        "{scores:?}"
    );
}

/// A bag is an unordered sample of tiles. Without the slot embedding
/// (`wsi_pos_embedding: false`), permuting a bag's tiles permutes their attention scores and
/// leaves the logits unchanged, and identical tiles get identical scores; with the
/// original's slot embedding, identical tiles get scores that differ by slot.
#[test]
fn without_slot_embedding_attention_follows_the_tiles_not_their_slots() {
    let _serial = support::serial();
    let device = Device::flex();
    device.seed(7);
    let free = MedCrossViTConfig {
        wsi_pos_embedding: false,
        ..support::tiny_model(2, 5)
    };
    let model = free.init(&device).unwrap();
    let (tiles, expression) = six_tiles_and_expression(&device);
    assert_permutation_invariant(&model, &tiles, &expression);

    // Six copies of one tile: equal scores without slots, unequal with them.
    let same = [2, 2, 2, 2, 2, 2];
    let (_, flat) = logits_and_scores(&model, &tiles, &expression, &same);
    assert!(flat.iter().all(|&s| (s - flat[0]).abs() < 1e-6), "{flat:?}");
    let slotted = MedCrossViTConfig {
        wsi_pos_embedding: true,
        ..free
    }
    .init(&device)
    .unwrap();
    let (_, by_slot) = logits_and_scores(&slotted, &tiles, &expression, &same);
    assert!(
        by_slot.iter().any(|&s| (s - by_slot[0]).abs() > 1e-6),
        "{by_slot:?}"
    );
}

/// The model of a new run from a preset, as `train --preset` resolves it, is position-free:
/// permuting a bag's tiles permutes their scores and leaves the prediction unchanged.
#[test]
fn a_model_from_a_preset_scores_the_tiles_whatever_their_order() {
    use med_crossvit::run::{ModelSpec, PRESETS, check_model, resolve_model};
    let _serial = support::serial();
    let device = Device::flex();
    device.seed(11);
    // 8-wide tiles, 5 genes, 2 classes, bags of 6.
    for name in PRESETS {
        let config = resolve_model(&ModelSpec::Preset(name.into()), 8, 5, 2, 6).unwrap();
        assert!(!config.wsi_pos_embedding, "{name}");
        check_model(&config, 6).unwrap();
    }
    let config = resolve_model(&ModelSpec::Preset("small".into()), 8, 5, 2, 6).unwrap();
    let model = config.init(&device).unwrap();
    assert!(model.wsi_embedder.pos_embedding.is_none());
    let (tiles, expression) = six_tiles_and_expression(&device);
    assert_permutation_invariant(&model, &tiles, &expression);
}
