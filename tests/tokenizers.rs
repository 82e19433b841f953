//! Gene tokenizers: dense (the original's), per-gene and pathways.

use std::path::Path;

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};
use med_crossvit::data::{TileOptions, read_signatures};
use med_crossvit::eval::EvaluateRequest;
use med_crossvit::model::{GeneGroup, RnaEmbedderConfig, RnaTokenizer};
use med_crossvit::run::{ModelBundle, TokenizerSpec};
use med_crossvit::train;
use med_crossvit::{ConfigError, MedCrossViTConfig, ModelInput};

fn tiny(tokenizer: RnaTokenizer, genes: usize) -> MedCrossViTConfig {
    MedCrossViTConfig {
        rna_tokenizer: tokenizer,
        ..common::tiny_model(2, genes)
    }
}

fn input(genes: usize, device: &Device) -> ModelInput {
    let tiles: Vec<f32> = (0..2 * 6 * 8)
        .map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.5)
        .collect();
    let expr: Vec<f32> = (0..2 * genes)
        .map(|i| ((i * 5) % 13) as f32 / 13.0 - 0.5)
        .collect();
    ModelInput::new(
        Tensor::from_data(TensorData::new(tiles, [2, 6, 8]), device),
        Tensor::from_data(TensorData::new(expr, [2, genes]), device),
    )
}

fn groups() -> RnaTokenizer {
    RnaTokenizer::Pathways {
        groups: vec![
            GeneGroup {
                name: "apoptosis".into(),
                genes: vec![0, 1, 2],
            },
            GeneGroup {
                name: "hypoxia".into(),
                genes: vec![2, 5, 7, 9],
            },
            GeneGroup {
                name: "single".into(),
                genes: vec![4],
            },
        ],
    }
}

#[test]
fn parameter_counts_by_hand() {
    let device = Device::flex();
    let (g, d) = (10, 6);
    let count = |t: RnaTokenizer| {
        RnaEmbedderConfig::new(g, d)
            .with_tokenizer(t)
            .init(&device)
            .num_params()
    };
    // Dense: LayerNorm(g) + Linear(g → g·d) + LayerNorm(d) + CLS + positions (g + 1).
    assert_eq!(
        count(RnaTokenizer::Dense),
        2 * g + (g * g * d + g * d) + 2 * d + d + (g + 1) * d
    );
    // Per gene: LayerNorm(g) + E and b (g × d each) + CLS + positions.
    assert_eq!(
        count(RnaTokenizer::PerGene),
        2 * g + 2 * g * d + d + (g + 1) * d
    );
    // Pathways: a Linear(n_group → d) per group + CLS + positions over 3 + 1 tokens.
    assert_eq!(
        count(groups()),
        (3 * d + d) + (4 * d + d) + (d + d) + d + 4 * d
    );
}

#[test]
fn per_gene_tokens_are_x_times_e_plus_b() {
    let device = Device::flex();
    let embedder = RnaEmbedderConfig::new(3, 2)
        .with_tokenizer(RnaTokenizer::PerGene)
        .init(&device);
    let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, -1.0, 3.0], [1, 3]), &device);
    let out = embedder.forward(x.clone());
    assert_eq!(out.dims(), [1, 4, 2]);
    // Undo the positional embedding and compare with x̂_g · E_g + b_g by hand.
    let normalized: Vec<f32> = embedder
        .input_norm
        .as_ref()
        .unwrap()
        .forward(x)
        .into_data()
        .try_to_vec()
        .unwrap();
    let tokens: Vec<f32> = (out - embedder.pos_embedding.val())
        .narrow(1, 1, 3)
        .into_data()
        .try_to_vec()
        .unwrap();
    let e: Vec<f32> = embedder
        .gene_weight
        .as_ref()
        .unwrap()
        .val()
        .into_data()
        .try_to_vec()
        .unwrap();
    let b: Vec<f32> = embedder
        .gene_bias
        .as_ref()
        .unwrap()
        .val()
        .into_data()
        .try_to_vec()
        .unwrap();
    for gene in 0..3 {
        for k in 0..2 {
            let want = normalized[gene] * e[gene * 2 + k] + b[gene * 2 + k];
            assert!((tokens[gene * 2 + k] - want).abs() < 1e-5);
        }
    }
}

struct Grads<'a>(&'a burn::tensor::Gradients, usize, usize);
impl ModuleVisitor for Grads<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        self.1 += 1;
        if p.val()
            .grad(self.0)
            .is_some_and(|g| g.abs().sum().into_scalar::<f32>() > 0.0)
        {
            self.2 += 1;
        }
    }
}

#[test]
fn each_tokenizer_runs_forward_and_backward() {
    let device = Device::flex().autodiff();
    for (tokenizer, tokens) in [
        (RnaTokenizer::Dense, 10),
        (RnaTokenizer::PerGene, 10),
        (groups(), 3),
    ] {
        let name = tokenizer.name();
        let config = tiny(tokenizer, 10);
        let model = config.init(&device).unwrap();
        let out = model.forward(input(10, &device).with_attention()).unwrap();
        assert_eq!(out.logits.dims(), [2, 2], "{name}");
        assert_eq!(
            out.attention.as_ref().unwrap().wsi_cls_over_genes.dims(),
            [2, 1, 2, 1 + tokens],
            "{name}"
        );
        let grads = (out.logits.clone() * out.logits).sum().backward();
        let mut check = Grads(&grads, 0, 0);
        model.visit(&mut check);
        assert_eq!(check.1, check.2, "{name}: every parameter gets a gradient");
    }
}

#[test]
fn invalid_pathways_are_config_errors() {
    let empty = RnaTokenizer::Pathways {
        groups: vec![GeneGroup {
            name: "none".into(),
            genes: vec![],
        }],
    };
    assert!(matches!(
        tiny(empty, 10).validate(),
        Err(ConfigError::Inconsistent {
            field: "rna_tokenizer",
            ..
        })
    ));
    let outside = RnaTokenizer::Pathways {
        groups: vec![GeneGroup {
            name: "far".into(),
            genes: vec![10],
        }],
    };
    let err = tiny(outside, 10).validate().unwrap_err().to_string();
    assert!(err.contains("far") && err.contains("10"), "{err}");
    assert!(
        tiny(RnaTokenizer::Pathways { groups: vec![] }, 10)
            .validate()
            .is_err()
    );
    // 20,000 genes: impossible dense, fine per gene.
    let mut big = MedCrossViTConfig::seed();
    big.rna_num_genes = 20_000;
    assert!(big.validate().unwrap_err().to_string().contains("per_gene"));
    big.rna_tokenizer = RnaTokenizer::PerGene;
    big.validate().unwrap();
}

#[test]
fn signatures_match_genes_and_report_the_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signatures.csv");
    std::fs::write(
        &path,
        "immune,stroma,nothing\nCD8A,COL1A1,XYZ\nCD4,FAP,\nBOGUS,,\n",
    )
    .unwrap();
    let genes: Vec<String> = ["rna_CD8A", "rna_COL1A1", "rna_CD4", "rna_FAP", "rna_XYZ"]
        .map(String::from)
        .to_vec();
    let s = read_signatures(&path, &genes, "rna_").unwrap();
    assert_eq!(s.groups.len(), 3);
    assert_eq!(
        s.groups[0],
        GeneGroup {
            name: "immune".into(),
            genes: vec![0, 2]
        }
    );
    assert_eq!(s.groups[1].genes, vec![1, 3]);
    assert_eq!(s.unknown, vec!["BOGUS"]);
    std::fs::write(&path, "immune,empty\nCD8A,NOPE\n").unwrap();
    let err = read_signatures(&path, &genes, "rna_")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`empty`") && err.contains("signatures.csv"),
        "{err}"
    );
}

#[test]
fn training_and_attention_with_pathways() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(&dir.path().join("cohort"), 16, 16, 8, 2, false);
    let signatures = dir.path().join("signatures.csv");
    std::fs::write(&signatures, "first,second\n0,4\n1,5\n2,6\n3,MISSING\n").unwrap();
    let device = Device::flex();
    let run = dir.path().join("run");
    let settings = med_crossvit::run::TrainSettings {
        epochs: 2,
        bags: med_crossvit::data::BagSettings {
            bag_size: 8,
            ..Default::default()
        },
        batch_size: 4,
        ..Default::default()
    };
    let mut request = common::request(data.clone(), settings, run.clone());
    request.tokenizer = Some(TokenizerSpec::Pathways(signatures));
    let mut messages = Vec::new();
    train::train(&request, &device, &mut |e| {
        if let train::Event::Message(m) = e {
            messages.push(m)
        }
    })
    .unwrap();
    assert!(
        messages.iter().any(|m| m.contains("MISSING")),
        "{messages:?}"
    );
    let bundle = ModelBundle::load(&run, &device).unwrap();
    assert_eq!(bundle.model.config().rna_tokenizer.tokens(8), 2);
    let att = dir.path().join("att");
    let request = EvaluateRequest {
        csv: data.csv.clone(),
        tiles: TileOptions::new(&data.features_dir),
        require_targets: false,
    };
    let (_, files) =
        med_crossvit::inference::predict_cohort(&bundle, &request, &device, Some(&att)).unwrap();
    let genes = std::fs::read_to_string(&files[0].genes_csv).unwrap();
    let names: Vec<&str> = genes
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert!(Path::new(&files[0].tiles_csv).is_file());
}
