//! `Model`: a trained model folder applied to NumPy arrays, and `read_tiles`, a tile file
//! read into one.

use std::path::PathBuf;

use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Bool, Device, Tensor, TensorData};
use numpy::ndarray::{Array1, Array2};
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use med_crossvit::ModelInput;
use med_crossvit::eval::survival::{risk_from_hazards, survival_curve};
use med_crossvit::run::{ModelBundle, Task};

use crate::errors::to_py;

/// A trained model: a run folder or a model folder (as `--model` takes), loaded once.
#[pyclass(module = "med_crossvit._native", frozen)]
pub struct Model {
    bundle: ModelBundle,
    device: Device,
    path: PathBuf,
}

/// The values of `a` in row-major order: the array's own memory when it is C-contiguous,
/// else one copy.
fn values<D: numpy::ndarray::Dimension>(a: &numpy::PyReadonlyArray<'_, f32, D>) -> Vec<f32> {
    // `as_slice` also takes a Fortran-ordered array, in its memory order: read only a
    // C-ordered one as it lies.
    match a.as_slice() {
        Ok(slice) if a.is_c_contiguous() => slice.to_vec(),
        _ => a.as_array().iter().copied().collect(),
    }
}

/// A `ValueError` for argument `name`: `expected`, got `got`.
fn shape_error(name: &str, expected: String, got: &[usize]) -> PyErr {
    PyValueError::new_err(format!("{name}: expected shape {expected}, got {got:?}"))
}

/// What the model outputs for one batch, as plain vectors (computed without the GIL).
struct Outputs {
    batch: usize,
    classes: usize,
    logits: Vec<f32>,
    tiles: (usize, Vec<f32>),
    genes: (usize, Vec<f32>),
}

#[pymethods]
impl Model {
    /// Loads the run or model folder `path` (a cross-validation folder's `fold_K`, not the
    /// folder itself).
    #[staticmethod]
    #[pyo3(signature = (path, device="flex"))]
    fn load(py: Python<'_>, path: PathBuf, device: &str) -> PyResult<Self> {
        let device = crate::commands::device(device)?;
        let bundle = py
            .detach(|| ModelBundle::load(&path, &device))
            .map_err(to_py)?;
        Ok(Self {
            bundle,
            device,
            path,
        })
    }

    /// The folder the model was loaded from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The genes, in the order `predict` takes them (empty for an imported model whose gene
    /// names are unknown: then any `n_genes` columns).
    #[getter]
    fn genes(&self) -> Vec<String> {
        self.bundle.normalization.genes.clone()
    }

    /// The number of genes the model takes.
    #[getter]
    fn n_genes(&self) -> usize {
        self.bundle.model.config().rna_num_genes
    }

    /// The width of a tile feature vector.
    #[getter]
    fn n_features(&self) -> usize {
        self.bundle.model.config().wsi_dim
    }

    /// `classification` or `survival`.
    #[getter]
    fn task(&self) -> &'static str {
        match self.bundle.task() {
            Task::Classification => "classification",
            Task::Survival => "survival",
        }
    }

    /// The class names (for survival: one per time bin), in the order of the outputs.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.bundle.labels.classes.clone()
    }

    /// The folder's `config.json` as JSON text.
    #[getter]
    fn config_json(&self) -> String {
        serde_json::to_string(&self.bundle.config).expect("a config serializes")
    }

    /// Applies the model to a batch; see `med_crossvit.Model.predict`.
    #[pyo3(signature = (tiles, expression, mask=None, normalized=false))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        tiles: PyReadonlyArray3<'py, f32>,
        expression: PyReadonlyArray2<'py, f32>,
        mask: Option<PyReadonlyArray2<'py, bool>>,
        normalized: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let config = self.bundle.model.config();
        let [b, t, d] = <[usize; 3]>::try_from(tiles.shape()).expect("3-D");
        let (dim, genes) = (config.wsi_dim, config.rna_num_genes);
        if d != dim || b == 0 || t == 0 {
            return Err(shape_error(
                "tiles",
                format!("[batch ≥ 1, tiles ≥ 1, {dim}]"),
                tiles.shape(),
            ));
        }
        if expression.shape() != [b, genes] {
            return Err(shape_error(
                "expression",
                format!("[{b}, {genes}] (batch, genes)"),
                expression.shape(),
            ));
        }
        if let Some(m) = &mask
            && m.shape() != [b, t]
        {
            return Err(shape_error(
                "mask",
                format!("[{b}, {t}] (batch, tiles)"),
                m.shape(),
            ));
        }
        let tile_values = values(&tiles);
        let mut rows = values(&expression);
        if !normalized {
            let norm = &self.bundle.normalization;
            rows = rows
                .chunks(genes.max(1))
                .map(|row| norm.apply(row))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| to_py(e.into()))?
                .concat();
        }
        let padded = mask.map(|m| m.as_array().iter().copied().collect::<Vec<bool>>());
        let out = py
            .detach(|| self.forward(tile_values, [b, t, d], rows, genes, padded))
            .map_err(to_py)?;
        self.outputs(py, out)
    }
}

impl Model {
    /// The forward pass with attention, on the model's device.
    fn forward(
        &self,
        tiles: Vec<f32>,
        shape: [usize; 3],
        expression: Vec<f32>,
        genes: usize,
        padded: Option<Vec<bool>>,
    ) -> Result<Outputs, med_crossvit::Error> {
        let device = &self.device;
        let [b, t, _] = shape;
        let tiles = Tensor::<3>::from_data(TensorData::new(tiles, shape), device);
        let expression = Tensor::<2>::from_data(TensorData::new(expression, [b, genes]), device);
        let mut input = ModelInput::new(tiles, expression);
        if let Some(padded) = padded {
            input = input.mask_pad(Tensor::<2, Bool>::from_data(
                TensorData::new(padded, [b, t]),
                device,
            ));
        }
        let out = self.bundle.model.forward(input.with_attention())?;
        let attention = out.attention.expect("asked for");
        let classes = out.logits.dims()[1];
        let read = |x: Tensor<2>| -> (usize, Vec<f32>) {
            let n = x.dims()[1];
            (n, x.into_data().try_to_vec::<f32>().expect("f32 outputs"))
        };
        Ok(Outputs {
            batch: b,
            classes,
            logits: read(out.logits).1,
            tiles: read(attention.tile_scores()),
            genes: read(attention.gene_scores()),
        })
    }

    /// The dict of NumPy arrays `predict` returns.
    fn outputs<'py>(&self, py: Python<'py>, out: Outputs) -> PyResult<Bound<'py, PyDict>> {
        let (b, c) = (out.batch, out.classes);
        let array = |n: usize, v: Vec<f32>| -> PyResult<Bound<'py, PyArray2<f32>>> {
            Array2::from_shape_vec((b, n), v)
                .map(|a| a.into_pyarray(py))
                .map_err(|e| PyValueError::new_err(e.to_string()))
        };
        let dict = PyDict::new(py);
        let logits =
            Tensor::<2>::from_data(TensorData::new(out.logits.clone(), [b, c]), &self.device);
        match self.bundle.task() {
            Task::Classification => {
                let probs = softmax(logits, 1)
                    .into_data()
                    .try_to_vec::<f32>()
                    .expect("f32");
                dict.set_item("probabilities", array(c, probs)?)?;
            }
            Task::Survival => {
                let hazards = sigmoid(logits)
                    .into_data()
                    .try_to_vec::<f32>()
                    .expect("f32");
                let (mut risk, mut survival) = (Vec::with_capacity(b), Vec::with_capacity(b * c));
                for row in hazards.chunks(c) {
                    let h: Vec<f64> = row.iter().map(|&x| f64::from(x)).collect();
                    risk.push(risk_from_hazards(&h));
                    survival.extend(survival_curve(&h).map(|s| s as f32));
                }
                dict.set_item("hazards", array(c, hazards)?)?;
                dict.set_item("risk", Array1::from_vec(risk).into_pyarray(py))?;
                dict.set_item("survival", array(c, survival)?)?;
            }
        }
        dict.set_item("logits", array(c, out.logits)?)?;
        dict.set_item("tile_attention", array(out.tiles.0, out.tiles.1)?)?;
        dict.set_item("gene_attention", array(out.genes.0, out.genes.1)?)?;
        Ok(dict)
    }
}

/// The tile features of one tile file (HDF5 or `.pt`), `[tiles, features]` float32, read
/// as training reads it (`key`: the HDF5 dataset, found automatically when `None`).
#[pyfunction]
#[pyo3(signature = (path, key=None))]
pub fn read_tiles(
    py: Python<'_>,
    path: PathBuf,
    key: Option<String>,
) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let (rows, dim, values) = py
        .detach(|| -> Result<_, med_crossvit::DataError> {
            let file = med_crossvit::data::TileFile::open(&path, key.as_deref())?;
            Ok((file.tiles(), file.dim(), file.read_all()?))
        })
        .map_err(|e| to_py(e.into()))?;
    Array2::from_shape_vec((rows, dim), values)
        .map(|a| a.into_pyarray(py))
        .map_err(|e| PyValueError::new_err(e.to_string()))
}
