//! Training steps that hold one layer's activations at a time.
//!
//! An ordinary backward pass needs every intermediate tensor of the forward pass: about
//! 1.1 GB for the seed model at batch 16, on top of the weights, gradients and AdamW's two
//! moments (1.74 GB at 108.7 M parameters). [`MedCrossViT::backward_recomputed`] instead
//! cuts the forward pass into segments (the embedders, every encoder layer, every
//! cross-transformer, the heads with the loss):
//!
//! 1. a forward pass without a graph keeps only each segment's input tokens;
//! 2. from the last segment to the first, the segment is run again with a graph, and the
//!    backward pass of `Σ output · ∂loss/∂output` (the loss itself for the last) gives the
//!    gradients of its weights and of its inputs, which the next segment down continues from.
//!
//! Each weight belongs to exactly one segment, so its gradient is final once its segment is
//! done and can be handed to the caller at once: an optimizer step there means the gradients
//! of the whole model never exist together either. Dropout draws the same masks in both
//! passes because the device's generator is reseeded before each segment.
//!
//! The cost is one more forward pass per step: at the seed size, batch 16, 3.43 instead of
//! 2.66 s per step, for a peak of 1.60 instead of 2.86 GB.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};

use super::{Masks, MedCrossViT, ModelInput};
use crate::kernels::fused::layer_norm;
use crate::model::InputError;

/// One piece of the forward pass, recomputed as a unit in the backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    /// Both embedders: input → WSI and RNA tokens.
    Embed,
    /// One WSI encoder layer of a fusion block; the last one also applies the encoder's
    /// final LayerNorm.
    Wsi { block: usize, layer: usize },
    /// One RNA encoder layer, likewise.
    Rna { block: usize, layer: usize },
    /// The cross-transformer of a fusion block: both token sequences in and out.
    Cross { block: usize },
    /// Pooling, both heads and the loss.
    Head,
}

/// The token sequences going into or out of a segment (only those it reads or writes).
#[derive(Debug, Clone, Default)]
struct Streams {
    wsi: Option<Tensor<3>>,
    rna: Option<Tensor<3>>,
}

impl Streams {
    fn map(self, f: impl Fn(Tensor<3>) -> Tensor<3>) -> Self {
        Self {
            wsi: self.wsi.map(&f),
            rna: self.rna.map(&f),
        }
    }
}

/// What [`MedCrossViT::backward_recomputed`] returns.
#[derive(Debug)]
pub struct RecomputedStep {
    /// The model as the update callback left it.
    pub model: MedCrossViT,
    /// The batch's loss, without a graph (`[1]`).
    pub loss: Tensor<1>,
}

impl MedCrossViT {
    /// Computes the gradients of `loss(logits)` segment by segment, keeping only one
    /// segment's activations at a time, and hands the gradients of each group of weights to
    /// `update` as soon as they are final.
    ///
    /// The segments are the embedders, each encoder layer, each cross-transformer, and the
    /// heads with the loss. A forward pass without a graph keeps each segment's input
    /// tokens; then, from the last segment to the first, the segment is run again with a
    /// graph and the backward pass of `Σ output · ∂loss/∂output` gives the gradients of its
    /// weights and inputs. The device's generator is reseeded before each segment, so dropout
    /// draws the same masks in both passes (see [`forward_reseeded`](Self::forward_reseeded)).
    ///
    /// `update` receives the model and the gradients of one group of weights and returns the
    /// model: an optimizer step there (`|m, g| optimizer.step(lr, m, g)`) updates the model
    /// during the backward pass; accumulating them instead (for gradient accumulation or
    /// clipping by the global norm) gives the same gradients as an ordinary backward pass.
    /// The updates cannot affect the result: a segment's weights are not used by the
    /// segments computed after it.
    ///
    /// `seed` fixes the dropout masks of the step.
    ///
    /// # Errors
    ///
    /// [`InputError`] for a batch of the wrong shape, as [`forward`](Self::forward).
    ///
    /// # Panics
    ///
    /// On a device without autodiff (a programming error: there is nothing to differentiate).
    pub fn backward_recomputed<L, U>(
        self,
        input: ModelInput,
        seed: u64,
        loss: L,
        mut update: U,
    ) -> Result<RecomputedStep, InputError>
    where
        L: FnOnce(Tensor<2>) -> Tensor<1>,
        U: FnMut(MedCrossViT, GradientsParams) -> MedCrossViT,
    {
        let presence = self.check(&input)?;
        self.initialize_weights();
        let device = input.tiles.device();
        let masks = self.masks(&input, &presence);
        let (tiles, expression) = masks.zero_missing(input.tiles.clone(), input.expression.clone());
        let input = ModelInput {
            tiles,
            expression,
            ..input
        };
        let padding = &masks;
        let segments = self.segments();

        // Pass 1: no graph, keep each segment's inputs.
        let mut saved = Vec::with_capacity(segments.len());
        let head =
            self.clone()
                .no_grad()
                .run_segments(&segments, &input, padding, seed, |inputs| {
                    saved.push(inputs.clone())
                });
        saved.push(head);

        // Pass 2: last segment first, each with its own graph.
        let mut model = self;
        let mut loss = Some(loss);
        let mut loss_value = None;
        let mut grad = Streams::default(); // ∂loss/∂(tokens flowing out of the segment)
        for (i, &segment) in segments.iter().enumerate().rev() {
            let leaves = saved
                .pop()
                .expect("one saved input per segment")
                .map(Tensor::require_grad);
            reseed(&device, seed, i);
            let objective = if segment == Segment::Head {
                let logits = model.logits(leaves.clone(), padding);
                let value = (loss.take().expect("one head segment"))(logits);
                loss_value = Some(value.clone().detach());
                value
            } else {
                let out = model.run(segment, &input, padding, leaves.clone());
                chained(out, &mut grad)
            };
            let mut grads = objective.backward();
            if let Some(wsi) = &leaves.wsi {
                grad.wsi = wsi.grad_remove(&mut grads);
            }
            if let Some(rna) = &leaves.rna {
                grad.rna = rna.grad_remove(&mut grads);
            }
            let groups = model.segment_grads(segment, &mut grads);
            drop(grads);
            drop(leaves);
            for group in groups {
                model = update(model, group);
            }
        }
        Ok(RecomputedStep {
            model,
            loss: loss_value.expect("the head segment ran"),
        })
    }

    /// The forward pass with the dropout masks that [`backward_recomputed`] with the same
    /// `seed` draws (the device's generator is reseeded before each segment), in one graph:
    /// the logits whose ordinary backward pass the recomputed one reproduces.
    ///
    /// [`backward_recomputed`]: Self::backward_recomputed
    ///
    /// # Errors
    ///
    /// [`InputError`] for a batch of the wrong shape, as [`forward`](Self::forward).
    pub fn forward_reseeded(&self, input: ModelInput, seed: u64) -> Result<Tensor<2>, InputError> {
        let presence = self.check(&input)?;
        self.initialize_weights();
        let masks = self.masks(&input, &presence);
        let (tiles, expression) = masks.zero_missing(input.tiles, input.expression);
        let input = ModelInput {
            tiles,
            expression,
            ..input
        };
        let head = self.run_segments(&self.segments(), &input, &masks, seed, |_| {});
        Ok(self.logits(head, &masks))
    }

    /// Runs every segment before the heads in order, reseeding the generator before each and
    /// handing each one's inputs to `keep`; returns the heads' inputs.
    fn run_segments(
        &self,
        segments: &[Segment],
        input: &ModelInput,
        padding: &Masks,
        seed: u64,
        mut keep: impl FnMut(&Streams),
    ) -> Streams {
        let device = input.tiles.device();
        let mut flowing = Streams::default();
        for (i, &segment) in segments.iter().enumerate() {
            if segment == Segment::Head {
                break;
            }
            let inputs = take_inputs(segment, &mut flowing);
            keep(&inputs);
            reseed(&device, seed, i);
            let outputs = self.run(segment, input, padding, inputs);
            flowing.wsi = outputs.wsi.or(flowing.wsi);
            flowing.rna = outputs.rna.or(flowing.rna);
        }
        take_inputs(Segment::Head, &mut flowing)
    }

    /// The heads' logits for the final token sequences.
    fn logits(&self, tokens: Streams, padding: &Masks) -> Tensor<2> {
        let (Some(wsi), Some(rna)) = (tokens.wsi, tokens.rna) else {
            unreachable!("the heads read both token sequences")
        };
        self.heads(wsi, rna, padding).logits
    }

    /// Draws every weight not yet initialized now, in the order of the module's fields.
    ///
    /// Burn initializes weights lazily, on first use: without this, which random numbers a
    /// weight gets would depend on the order in which a forward pass first touches it, and a
    /// recomputed step would draw them between reseeding the generator and drawing dropout
    /// masks. Training calls it once after creating the model.
    pub fn initialize_weights(&self) {
        struct Touch;
        impl ModuleVisitor for Touch {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let _ = param.val();
            }
        }
        self.visit(&mut Touch);
    }

    /// The segments in forward order.
    fn segments(&self) -> Vec<Segment> {
        let mut segments = vec![Segment::Embed];
        for (block, b) in self.encoder.blocks.iter().enumerate() {
            segments.extend((0..b.wsi_enc.layers.len()).map(|layer| Segment::Wsi { block, layer }));
            segments.extend((0..b.rna_enc.layers.len()).map(|layer| Segment::Rna { block, layer }));
            segments.push(Segment::Cross { block });
        }
        segments.push(Segment::Head);
        segments
    }

    /// Runs one segment (not the heads) on its inputs; returns the sequences it writes.
    fn run(&self, segment: Segment, input: &ModelInput, masks: &Masks, inputs: Streams) -> Streams {
        let padding = masks.wsi.as_ref();
        let encoder_layer = |enc: &super::Transformer, layer: usize, x: Tensor<3>, pad| {
            let x = enc.layers[layer].forward(x, pad);
            if layer + 1 == enc.layers.len() {
                layer_norm(&enc.norm, x)
            } else {
                x
            }
        };
        match segment {
            Segment::Embed => Streams {
                wsi: Some(self.wsi_embedder.forward(input.tiles.clone())),
                rna: Some(self.rna_embedder.forward(input.expression.clone())),
            },
            Segment::Wsi { block, layer } => Streams {
                wsi: inputs
                    .wsi
                    .map(|x| encoder_layer(&self.encoder.blocks[block].wsi_enc, layer, x, padding)),
                rna: None,
            },
            Segment::Rna { block, layer } => Streams {
                wsi: None,
                rna: inputs
                    .rna
                    .map(|x| encoder_layer(&self.encoder.blocks[block].rna_enc, layer, x, None)),
            },
            Segment::Cross { block } => {
                let (Some(wsi), Some(rna)) = (inputs.wsi, inputs.rna) else {
                    unreachable!("the cross-transformer reads both token sequences")
                };
                let (wsi, rna) = self.encoder.blocks[block].cross.forward(
                    wsi,
                    rna,
                    padding,
                    masks.rna.as_ref(),
                    None,
                );
                Streams {
                    wsi: Some(wsi),
                    rna: Some(rna),
                }
            }
            Segment::Head => unreachable!("the heads are run with the loss"),
        }
    }

    /// The gradients of a segment's weights, one group per submodule.
    fn segment_grads(
        &self,
        segment: Segment,
        grads: &mut burn::tensor::Gradients,
    ) -> Vec<GradientsParams> {
        match segment {
            Segment::Embed => vec![
                GradientsParams::from_module(grads, &self.wsi_embedder),
                GradientsParams::from_module(grads, &self.rna_embedder),
            ],
            Segment::Wsi { block, layer } | Segment::Rna { block, layer } => {
                let b = &self.encoder.blocks[block];
                let enc = if matches!(segment, Segment::Wsi { .. }) {
                    &b.wsi_enc
                } else {
                    &b.rna_enc
                };
                let mut groups = vec![GradientsParams::from_module(grads, &enc.layers[layer])];
                if layer + 1 == enc.layers.len() {
                    groups.push(GradientsParams::from_module(grads, &enc.norm));
                }
                groups
            }
            Segment::Cross { block } => vec![GradientsParams::from_module(
                grads,
                &self.encoder.blocks[block].cross,
            )],
            Segment::Head => vec![
                GradientsParams::from_module(grads, &self.wsi_head),
                GradientsParams::from_module(grads, &self.rna_head),
            ],
        }
    }
}

/// Takes from the flowing sequences those `segment` reads (cloned handles; no copy).
fn take_inputs(segment: Segment, flowing: &mut Streams) -> Streams {
    match segment {
        Segment::Embed => Streams::default(),
        Segment::Wsi { .. } => Streams {
            wsi: flowing.wsi.clone(),
            rna: None,
        },
        Segment::Rna { .. } => Streams {
            wsi: None,
            rna: flowing.rna.clone(),
        },
        Segment::Cross { .. } | Segment::Head => flowing.clone(),
    }
}

/// Reseeds the device's generator for segment `i` of a step.
fn reseed(device: &Device, seed: u64, i: usize) {
    device.seed(crate::util::seed::mix(seed, i as u64, 0x5e6));
}
/// The objective whose gradient carries `grad` (∂loss/∂ the segment's output tokens) back
/// through a segment: `Σ out ⊙ grad` over the streams the segment writes; takes the
/// gradients it uses out of `grad`.
fn chained(out: Streams, grad: &mut Streams) -> Tensor<1> {
    let mut terms = Vec::with_capacity(2);
    for (out, g) in [(out.wsi, &mut grad.wsi), (out.rna, &mut grad.rna)] {
        if let Some(out) = out {
            let g = g.take().expect("every output reaches the loss");
            terms.push((out * g).sum());
        }
    }
    terms
        .into_iter()
        .reduce(|a, b| a + b)
        .expect("every segment but the heads writes tokens")
}
