//! Progress of long library calls (`evaluate`, `predict`, `cohort gdc`): a light observer that
//! a caller installs around a call, on its own thread, and that the call's loops tell how far
//! they are. Without an observer a report costs one thread-local look-up.

use std::cell::RefCell;

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

/// Puts the previous observer back, even when the call panics.
struct Restore(Option<Option<Observer>>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(previous) = self.0.take() {
            OBSERVER.with(|o| *o.borrow_mut() = previous);
        }
    }
}

/// Runs `call` with `observer` told of the progress of the loops it runs on this thread.
pub fn observe<R>(observer: Observer, call: impl FnOnce() -> R) -> R {
    let previous = OBSERVER.with(|o| o.replace(Some(observer)));
    let _restore = Restore(Some(previous));
    call()
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
