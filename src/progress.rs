//! Progress of long library calls (`evaluate`, `predict`, `cohort gdc`): a light observer that
//! a caller installs around a call, on its own thread, and that the call's loops tell how far
//! they are. Without an observer a report costs one thread-local look-up.
//!
//! A caller may also install a [`StopRequest`] around a training call ([`stoppable`]): once
//! it is set (from the progress callback, another thread or a signal handler), training stops
//! at its next safe point with the run left resumable.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How far a loop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// What the loop does (`predicting bags`, `reading expression files`).
    pub what: &'static str,
    /// Units done.
    pub done: usize,
    /// Units in all.
    pub total: usize,
}

/// A progress observer.
pub type Observer = Box<dyn FnMut(Step)>;

thread_local! {
    static OBSERVER: RefCell<Option<Observer>> = const { RefCell::new(None) };
}

/// A thread-local slot of this module: what a call installs for the loops it runs.
type Slot<T> = std::thread::LocalKey<RefCell<Option<T>>>;

/// Puts a slot's previous value back, even when the call panics.
struct Restore<T: 'static> {
    slot: &'static Slot<T>,
    previous: Option<Option<T>>,
}

impl<T: 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            self.slot.with(|s| *s.borrow_mut() = previous);
        }
    }
}

/// Runs `call` with `value` in `slot` on this thread, the slot's previous value put back after.
fn with_slot<T: 'static, R>(slot: &'static Slot<T>, value: T, call: impl FnOnce() -> R) -> R {
    let previous = slot.with(|s| s.replace(Some(value)));
    let _restore = Restore {
        slot,
        previous: Some(previous),
    };
    call()
}

/// Runs `call` with `observer` told of the progress of the loops it runs on this thread.
pub fn observe<R>(observer: Observer, call: impl FnOnce() -> R) -> R {
    with_slot(&OBSERVER, observer, call)
}

/// Tells the observer of this thread, if any, that `done` of `total` units of `what` are done.
pub(crate) fn report(what: &'static str, done: usize, total: usize) {
    OBSERVER.with(|o| {
        if let Ok(mut o) = o.try_borrow_mut()
            && let Some(observer) = o.as_mut()
        {
            observer(Step { what, done, total });
        }
    });
}

/// A request that a long call stop at its next safe point: a shared flag, cheap to clone
/// and to set from any thread.
///
/// Training ([`train::train`](crate::train::train), [`train::resume`](crate::train::resume))
/// run inside [`stoppable`] checks it after every batch and before every epoch, within one
/// process (an MPI group ignores it: its ranks must stop together). Once it is set, the fit
/// drops the epoch in progress and returns [`RunError::Stopped`](crate::RunError::Stopped);
/// the run folder keeps the checkpoint of its last complete epoch, exactly as after a kill,
/// and `resume` ends where the uninterrupted run would have.
#[derive(Debug, Clone, Default)]
pub struct StopRequest(Arc<AtomicBool>);

impl StopRequest {
    /// A request not yet made.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the call to stop.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the stop has been asked for.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

thread_local! {
    static STOP: RefCell<Option<StopRequest>> = const { RefCell::new(None) };
}

/// Runs `call` on this thread with `request` watched by the training loops it runs.
pub fn stoppable<R>(request: &StopRequest, call: impl FnOnce() -> R) -> R {
    with_slot(&STOP, request.clone(), call)
}

/// Whether the stop request installed on this thread, if any, has been made.
pub(crate) fn stop_requested() -> bool {
    STOP.with(|s| s.borrow().as_ref().is_some_and(StopRequest::is_requested))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn an_observer_sees_the_steps_of_its_call_only() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        report("before", 0, 1);
        let r = observe(Box::new(move |s| sink.lock().unwrap().push(s)), || {
            report("work", 1, 2);
            report("work", 2, 2);
            7
        });
        report("after", 1, 1);
        assert_eq!(r, 7);
        assert!(!stop_requested());
        let stop = StopRequest::new();
        let asked = stoppable(&stop, || {
            let before = stop_requested();
            stop.clone().request();
            (before, stop_requested())
        });
        assert_eq!(asked, (false, true));
        assert!(
            !stop_requested(),
            "the request is watched inside its call only"
        );
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            [
                Step {
                    what: "work",
                    done: 1,
                    total: 2
                },
                Step {
                    what: "work",
                    done: 2,
                    total: 2
                }
            ]
        );
    }
}
