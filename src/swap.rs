//! [`Swap`]: a value the daemon replaces whole when it reloads its configuration (SIGHUP),
//! and reads once per request.

use std::sync::{Arc, PoisonError, RwLock};

/// A value replaced whole at a reload and read per request: the NAS table and the sites.
///
/// A request takes an [`Arc`] of the current value once and keeps it to the end, so a request
/// that started before a reload finishes with the table it started with, and never sees half
/// of an old table and half of a new one. The lock (a std `RwLock`) is held only to clone or
/// replace the `Arc`, never across `.await`.
#[derive(Debug)]
pub struct Swap<T>(RwLock<Arc<T>>);

impl<T> Swap<T> {
    /// Holds `value`.
    pub fn new(value: T) -> Self {
        Self(RwLock::new(Arc::new(value)))
    }

    /// The current value.
    pub fn load(&self) -> Arc<T> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the value; requests already holding the old one keep it until they finish.
    pub fn store(&self, value: T) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_keeps_what_it_loaded_and_the_next_sees_the_new_value() {
        let swap = Swap::new(String::from("old"));
        let held = swap.load();
        swap.store(String::from("new"));
        assert_eq!(*held, "old");
        assert_eq!(*swap.load(), "new");
    }
}
