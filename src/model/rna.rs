//! [`RnaEmbedder`]: turns an expression vector into RNA tokens, by one of three gene
//! tokenizers ([`RnaTokenizer`]).

use crate::kernels::dropout::{dropout, keep_mask};
use crate::kernels::fused::layer_norm;
use crate::kernels::linear::linear;
use burn::config::Config;
use burn::module::{Flag, Module, Param};
use burn::nn::{
    Dropout, DropoutConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::tensor::activation::elu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// A named group of genes (a pathway or signature), by gene column index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneGroup {
    /// The group's name (its signatures-CSV column).
    pub name: String,
    /// Indices of its genes among the cohort's gene columns.
    pub genes: Vec<usize>,
}

/// How expression becomes RNA tokens.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RnaTokenizer {
    /// The original's: LayerNorm(genes) → Linear(genes → genes · rna_dim) → one token per
    /// gene → LayerNorm(rna_dim). `genes² · rna_dim` weights: 7.7 million at 100 genes, about
    /// 3 billion at 2,000.
    #[default]
    Dense,
    /// One token per gene, `token_g = x_g · E_g + b_g` with a learned vector pair per gene
    /// (after LayerNorm over the genes): `2 · genes · rna_dim` weights.
    PerGene,
    /// One token per group of genes, each group's expression through its own
    /// Linear → ELU → AlphaDropout (the signature networks of MCAT and SurvPath).
    Pathways {
        /// The groups, each with at least one gene.
        groups: Vec<GeneGroup>,
    },
}

impl RnaTokenizer {
    /// Number of RNA tokens (without the CLS token) for `genes` genes.
    pub fn tokens(&self, genes: usize) -> usize {
        match self {
            Self::Dense | Self::PerGene => genes,
            Self::Pathways { groups } => groups.len(),
        }
    }

    /// The name of this tokenizer (`dense`, `per_gene`, `pathways`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dense => "dense",
            Self::PerGene => "per_gene",
            Self::Pathways { .. } => "pathways",
        }
    }
}

/// Configuration of an [`RnaEmbedder`].
#[derive(Config, Debug)]
pub struct RnaEmbedderConfig {
    /// Number of genes.
    pub num_genes: usize,
    /// Width of an RNA token.
    pub dim: usize,
    /// The gene tokenizer. Default dense.
    #[config(default = "RnaTokenizer::Dense")]
    pub tokenizer: RnaTokenizer,
    /// Dropout on the tokens (and AlphaDropout rate of the pathway networks). Default 0.
    #[config(default = 0.0)]
    pub dropout: f64,
}

/// One pathway's network: Linear(genes in the group → dim) → ELU → AlphaDropout.
#[derive(Module, Debug)]
pub struct PathwayNet {
    /// The projection.
    pub linear: Linear,
}

/// Gene tokens (by the configured [`RnaTokenizer`]), a CLS token, a positional embedding over
/// `tokens + 1` positions, and dropout.
///
/// Create with [`RnaEmbedderConfig::init`].
#[derive(Module, Debug)]
pub struct RnaEmbedder {
    /// LayerNorm over the expression vector (dense and per-gene).
    pub input_norm: Option<LayerNorm>,
    /// Dense: `num_genes → num_genes · dim`.
    pub project: Option<Linear>,
    /// Dense: LayerNorm over each gene token.
    pub token_norm: Option<LayerNorm>,
    /// Per-gene: the vectors `E_g`, `[num_genes, dim]`.
    pub gene_weight: Option<Param<Tensor<2>>>,
    /// Per-gene: the vectors `b_g`, `[num_genes, dim]`.
    pub gene_bias: Option<Param<Tensor<2>>>,
    /// Pathways: one network per group.
    pub pathways: Vec<PathwayNet>,
    /// The CLS token, `[1, 1, dim]`, initialized from N(0, 1).
    pub cls_token: Param<Tensor<3>>,
    /// Positional embedding `[1, tokens + 1, dim]`, initialized from N(0, 1).
    pub pos_embedding: Param<Tensor<3>>,
    /// Dropout on the tokens.
    pub dropout: Dropout,
    /// Whether AlphaDropout acts (training mode), as [`Dropout`]'s flag.
    pub alpha_dropout_training: Param<Flag>,
    #[module(skip)]
    groups: Vec<Vec<usize>>,
    #[module(skip)]
    alpha_dropout: f64,
}

impl RnaEmbedderConfig {
    /// Initializes an [`RnaEmbedder`] on `device`.
    pub fn init(&self, device: &Device) -> RnaEmbedder {
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 1.0,
        };
        let (g, d) = (self.num_genes, self.dim);
        let dense = self.tokenizer == RnaTokenizer::Dense;
        let per_gene = self.tokenizer == RnaTokenizer::PerGene;
        let groups: Vec<Vec<usize>> = match &self.tokenizer {
            RnaTokenizer::Pathways { groups } => groups.iter().map(|gr| gr.genes.clone()).collect(),
            _ => Vec::new(),
        };
        RnaEmbedder {
            input_norm: (dense || per_gene).then(|| LayerNormConfig::new(g).init(device)),
            project: dense.then(|| LinearConfig::new(g, g * d).init(device)),
            token_norm: dense.then(|| LayerNormConfig::new(d).init(device)),
            gene_weight: per_gene.then(|| normal.init([g, d], device)),
            gene_bias: per_gene.then(|| normal.init([g, d], device)),
            pathways: groups
                .iter()
                .map(|genes| PathwayNet {
                    linear: LinearConfig::new(genes.len(), d).init(device),
                })
                .collect(),
            cls_token: normal.init([1, 1, d], device),
            pos_embedding: normal.init([1, self.tokenizer.tokens(g) + 1, d], device),
            dropout: DropoutConfig::new(self.dropout).init(),
            alpha_dropout_training: Param::from_bool(true),
            groups,
            alpha_dropout: self.dropout,
        }
    }
}

/// SELU's negative saturation value, the value AlphaDropout drops to.
const ALPHA_PRIME: f64 = -1.758_099_340_847_376_6;

impl RnaEmbedder {
    /// # Shapes
    /// - expression: `[batch, num_genes]`
    /// - output: `[batch, 1 + tokens, dim]`, the CLS token first
    pub fn forward(&self, expression: Tensor<2>) -> Tensor<3> {
        let [batch, genes] = expression.dims();
        let dim = self.cls_token.dims()[2];
        let tokens = if let Some(project) = &self.project {
            let x = self.normalize(expression);
            let x = linear(project, x).reshape([batch, genes, dim]); // [b, g, d]
            layer_norm(self.token_norm.as_ref().expect("dense has a token norm"), x)
        } else if let (Some(w), Some(b)) = (&self.gene_weight, &self.gene_bias) {
            let x = self.normalize(expression).reshape([batch, genes, 1]); // [b, g, 1]
            x * w.val().unsqueeze_dim::<3>(0) + b.val().unsqueeze_dim::<3>(0) // [b, g, d]
        } else {
            let device = expression.device();
            let per_group: Vec<Tensor<3>> = self
                .pathways
                .iter()
                .zip(&self.groups)
                .map(|(net, genes)| {
                    let idx: Vec<i64> = genes.iter().map(|&g| g as i64).collect();
                    let idx =
                        Tensor::<1, Int>::from_data(TensorData::new(idx, [genes.len()]), &device);
                    let x = expression.clone().select(1, idx); // [b, n_group]
                    let t = self.alpha_drop(elu(linear(&net.linear, x), 1.0)); // [b, d]
                    t.reshape([batch, 1, dim])
                })
                .collect();
            Tensor::cat(per_group, 1) // [b, groups, d]
        };
        let cls = self.cls_token.val().expand([batch, 1, dim]); // [b, 1, d]
        let x = Tensor::cat(vec![cls, tokens], 1) + self.pos_embedding.val(); // [b, 1 + t, d]
        dropout(&self.dropout, x)
    }

    fn normalize(&self, expression: Tensor<2>) -> Tensor<2> {
        match &self.input_norm {
            Some(norm) => layer_norm(norm, expression),
            None => expression,
        }
    }

    /// AlphaDropout (Klambauer et al., 2017): dropped units go to SELU's saturation value and
    /// an affine correction keeps the mean and variance. Active only in training on an
    /// autodiff device, as [`Dropout`].
    fn alpha_drop(&self, x: Tensor<2>) -> Tensor<2> {
        let p = self.alpha_dropout;
        if p == 0.0 || !self.alpha_dropout_training.is_enabled() || !x.device().is_autodiff() {
            return x;
        }
        let keep = keep_mask(&x, 1.0 - p); // 1 = kept
        let a = ((1.0 - p) * (1.0 + p * ALPHA_PRIME * ALPHA_PRIME)).powf(-0.5);
        let b = -a * ALPHA_PRIME * p;
        let dropped = (keep.clone().neg() + 1.0) * ALPHA_PRIME;
        (x * keep + dropped) * a + b
    }
}
