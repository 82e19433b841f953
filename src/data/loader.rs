//! [`BagLoader`]: reads the bags of the next batches in parallel workers while the model
//! works on the current one.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use burn::data::dataset::Dataset;
use rayon::prelude::*;

use super::{BagItem, CohortDataset, DataError};

/// Batches of bag items, read ahead by `workers` threads.
///
/// Iterating yields `Result<Vec<BagItem>>` in the order given; the first read error ends the
/// iteration after it is yielded.
pub struct BagLoader {
    receiver: Receiver<Result<Vec<BagItem>, DataError>>,
    worker: Option<JoinHandle<()>>,
}

impl BagLoader {
    /// Starts reading `order` (indices into `dataset`) in batches of `batch_size`, at most
    /// `prefetch` batches ahead.
    ///
    /// # Panics
    ///
    /// When `batch_size` or `workers` is 0 (the callers' settings are validated before).
    pub fn new(
        dataset: Arc<CohortDataset>,
        order: Vec<usize>,
        batch_size: usize,
        workers: usize,
        prefetch: usize,
    ) -> Self {
        assert!(batch_size > 0, "batch size is at least 1");
        let batches = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
        Self::with_batches(dataset, batches, workers, prefetch)
    }

    /// Starts reading the given batches (indices into `dataset`; a batch may be empty, e.g. a
    /// process's share of a small global batch), at most `prefetch` batches ahead.
    ///
    /// # Panics
    ///
    /// When `workers` is 0 (the callers' settings are validated before).
    pub fn with_batches(
        dataset: Arc<CohortDataset>,
        batches: Vec<Vec<usize>>,
        workers: usize,
        prefetch: usize,
    ) -> Self {
        assert!(workers > 0, "workers are at least 1");
        let (sender, receiver) = sync_channel(prefetch.max(1));
        let worker = std::thread::spawn(move || {
            let pool = match rayon::ThreadPoolBuilder::new().num_threads(workers).build() {
                Ok(pool) => pool,
                Err(e) => {
                    let _ = sender.send(Err(DataError::Setting {
                        setting: "workers",
                        message: format!("cannot start the loader threads: {e}"),
                    }));
                    return;
                }
            };
            for chunk in &batches {
                let items: Result<Vec<BagItem>, DataError> =
                    pool.install(|| chunk.par_iter().map(|&i| dataset.get(i)).collect());
                let failed = items.is_err();
                if sender.send(items).is_err() || failed {
                    return;
                }
            }
        });
        Self {
            receiver,
            worker: Some(worker),
        }
    }
}

impl Iterator for BagLoader {
    type Item = Result<Vec<BagItem>, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.receiver.recv().ok()
    }
}

impl Drop for BagLoader {
    fn drop(&mut self) {
        // Unblock the worker (its sends fail once the receiver is gone), then wait for it.
        let (_, dead) = sync_channel(0);
        drop(std::mem::replace(&mut self.receiver, dead));
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
