//! Placeholder until the reader lands.
#![allow(missing_docs, dead_code)]
use std::path::Path;
#[derive(Debug, Clone, Copy)]
pub enum PtDtype { F32, F16, BF16, F64 }
#[derive(Debug)]
pub enum PtError { Io(std::io::Error), Format(String), NotMatrix(String) }
impl std::fmt::Display for PtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self { Self::Io(e) => write!(f, "{e}"), Self::Format(m) | Self::NotMatrix(m) => f.write_str(m) }
    }
}
impl std::error::Error for PtError {}
#[derive(Debug)]
pub struct PtMatrix { rows: usize, cols: usize }
impl PtMatrix {
    pub fn open(_path: &Path) -> Result<PtMatrix, PtError> { Err(PtError::Format("todo".into())) }
    pub fn rows(&self) -> usize { self.rows }
    pub fn cols(&self) -> usize { self.cols }
    pub fn dtype(&self) -> PtDtype { PtDtype::F32 }
    pub fn read_rows(&self, _rows: &[usize]) -> Result<Vec<f32>, PtError> { Err(PtError::Format("todo".into())) }
    pub fn read_all(&self) -> Result<Vec<f32>, PtError> { Err(PtError::Format("todo".into())) }
}
